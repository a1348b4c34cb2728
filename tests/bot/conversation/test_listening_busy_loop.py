"""A busy event loop (50 talking guilds: each loop turn up to ~0.1-0.3 s): a member's queued audio
reaches the transcriber all at once, and a pause counts from when its packets arrived."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from bot.audio.utterances import UtteranceAudio
from bot.mistral.stt import Transcript
from bot.store import Database
from tests.bot.conversation.listening_support import (
    QUESTION,
    RecordingAnswerer,
    SlowMeter,
    end_and_settle,
    server_listening,
    start_speaking,
)
from tests.loop_turns import LoopTurns


class ArrivalTranscriber:
    """Notes the loop turn at which each loud byte of the utterance reached it."""

    turn_detection_available = True

    def __init__(self, turns: LoopTurns) -> None:
        self.turns = turns
        self.loud_bytes = 0
        self.changed = asyncio.Event()

    async def transcribe(self, audio: AsyncIterator[bytes], *, on_partial=None, on_turn=None,  # noqa: ANN001
                         on_language=None, options=None) -> Transcript:  # noqa: ANN001
        async for chunk in audio:
            self.loud_bytes += len(chunk.replace(b"\0", b""))  # PACKET's every other byte is loud
            self.changed.set()
        return Transcript(text=QUESTION, language="en", audio_seconds=0.0, partial_updates=0)


PACKET = b"\0\x10" * 320  # 20 ms of loud 16 kHz audio: 320 non-zero bytes


async def test_a_backlog_of_audio_reaches_the_transcriber_in_one_loop_turn_not_one_per_packet(
    database: Database,
) -> None:
    # At 50 talking guilds each loop turn is long and packets queue up behind it. Taken one
    # ``wait_for`` at a time (three loop turns per packet), a member's queue fell up to 34 packets
    # (~0.7 s) behind their voice, and the end of their turn was noticed that much later.
    meter = SlowMeter()
    meter.release.set()
    turns = LoopTurns()
    transcriber = ArrivalTranscriber(turns)
    listening = server_listening(database, transcriber, meter, RecordingAnswerer())
    start_speaking(listening, PACKET)
    try:
        async with asyncio.timeout(10):
            while transcriber.loud_bytes < 320:  # streaming: the first packet is through
                transcriber.changed.clear()
                await transcriber.changed.wait()
            for _ in range(40):  # what arrived while the loop was busy with the other guilds
                listening.on_heard(7, UtteranceAudio(PACKET))
            queued_at = turns.count
            while transcriber.loud_bytes < 41 * 320:
                transcriber.changed.clear()
                await transcriber.changed.wait()
            took = turns.count - queued_at
            await end_and_settle(listening, duration=0.8)
    finally:
        turns.stop()
        await listening.stop()
    assert transcriber.loud_bytes == 41 * 320  # every packet, once
    assert took <= 3  # one wakeup for the lot (and the test's own)


class PartialTranscriber(ArrivalTranscriber):
    """The whole question's text comes with the first audio (the bench's fake does much the same)."""

    async def transcribe(self, audio: AsyncIterator[bytes], *, on_partial=None, on_turn=None,  # noqa: ANN001
                         on_language=None, options=None) -> Transcript:  # noqa: ANN001
        async for chunk in audio:
            self.loud_bytes += len(chunk.replace(b"\0", b""))
            if on_partial is not None:
                on_partial(QUESTION)
            self.changed.set()
        return Transcript(text=QUESTION, language="en", audio_seconds=0.0, partial_updates=1)


async def test_a_pause_counts_from_when_its_packets_arrived_not_from_when_a_late_loop_took_them(
    database: Database,
) -> None:
    # The member's last words and the client's silence frames arrive, then the loop is busy
    # elsewhere for 150 ms (at 50 talking guilds a loop turn took up to ~0.3 s). Our eager end
    # needs 100 ms of pause: by the time the packets are taken it has passed, so the reply is
    # prepared in that same wakeup, not after another 100 ms measured from the late wakeup.
    meter = SlowMeter()
    meter.release.set()
    turns, answerer = LoopTurns(), RecordingAnswerer()
    transcriber = PartialTranscriber(turns)
    listening = server_listening(database, transcriber, meter, answerer)
    start_speaking(listening, PACKET)
    try:
        async with asyncio.timeout(10):
            while transcriber.loud_bytes < 320:
                transcriber.changed.clear()
                await transcriber.changed.wait()
            listening.on_heard(7, UtteranceAudio(PACKET))
            for _ in range(5):  # the client's Opus-silence frames that end a talk spurt
                listening.on_heard(7, UtteranceAudio(bytes(640)))
            time.sleep(0.15)  # noqa: ASYNC251  (the loop busy elsewhere: nothing here runs meanwhile)
            woke = turns.count
            while not answerer.enqueued:  # noqa: ASYNC110  (counting loop turns, not waiting for time)
                await asyncio.sleep(0)
            took = turns.count - woke
            await end_and_settle(listening)
    finally:
        turns.stop()
        await listening.stop()
    assert [turn.text for turn in answerer.enqueued] == [QUESTION]
    assert took <= 5  # the wakeup that takes the packets, the early turn's task, its admit
