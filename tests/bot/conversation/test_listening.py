"""Listening's own eager end racing the end of the transcript (the 50-guild hang of ed5985c), and
a member going on after the server's turn.end, before that turn's final transcript (issue 12's
two_sentences room). A busy loop's backlog of audio: test_listening_busy_loop.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from bot.audio.utterances import SpeechStarted, UtteranceAudio, UtteranceEnded
from bot.conversation import events
from bot.conversation.context import ConversationStore
from bot.conversation.listening import Listening
from bot.mistral.stt import Transcript, TurnEvent
from bot.store import Database
from tests.bot.conversation.listening_support import (
    GUILD,
    QUESTION,
    VOICE,
    RecordingAnswerer,
    SlowMeter,
    end_and_settle,
    server_listening,
    start_speaking,
)


class TurnsTranscriber:
    """Voxtral 3 as the bot sees it: the whole question's text comes while the member speaks;
    the final transcript comes once the audio ends (no server turn event in time)."""

    turn_detection_available = True

    def __init__(self) -> None:
        self.silence = asyncio.Event()  # silence is being streamed after the voice

    async def transcribe(self, audio: AsyncIterator[bytes], *, on_partial=None, on_turn=None,  # noqa: ANN001
                         on_language=None, options=None) -> Transcript:  # noqa: ANN001
        received = 0
        async for chunk in audio:
            if received and not any(chunk):
                self.silence.set()
            elif on_partial is not None:
                on_partial(QUESTION)
            received += len(chunk)
        return Transcript(text=QUESTION, language="en", audio_seconds=received / 32_000, partial_updates=1)


async def test_our_eager_end_still_being_made_when_the_transcript_ends_is_confirmed_not_orphaned(
    database: Database,
) -> None:
    # Under load the early turn's admit (a database write) is still pending when the final
    # transcript arrives; the early turn must then be the one answered and be confirmed, never
    # enqueued after the utterance was concluded with nobody left to confirm or withdraw it.
    meter, answerer, transcriber = SlowMeter(), RecordingAnswerer(), TurnsTranscriber()

    listening = server_listening(database, transcriber, meter, answerer)
    start_speaking(listening, b"\0\x10" * 3_200)
    try:
        async with asyncio.timeout(10):
            await meter.asked.wait()  # our eager end began making the provisional turn
            listening.on_heard(7, UtteranceEnded(duration=0.5, reason="silence", at=time.monotonic()))
            for _ in range(50):  # the transcript concludes while the early turn is admitted
                await asyncio.sleep(0)
            meter.release.set()
            while listening._transcriptions:
                await asyncio.sleep(0.01)
    finally:
        await listening.stop()
    assert transcriber.silence.is_set()
    assert meter.admits == 1  # one question, counted once
    assert [turn.text for turn in answerer.enqueued] == [QUESTION]
    provisional = answerer.enqueued[0]
    assert provisional.confirmed is not None and answerer.confirmed == [provisional.turn_id]
    assert answerer.withdrawn == []


FIRST, SECOND = "What is the capital of France?", "Please tell me quickly."


class ServerTurnsTranscriber:
    """Voxtral 3's turn events, stepped by the test: one transcription per server turn. Each hears
    the member's voice, then (once the test says they paused) sends turn.eager_end and turn.end
    and stops taking audio, as the real transcriber does; its final transcript comes once the
    test releases it (the STT's final latency)."""

    turn_detection_available = True

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.calls = 0
        self.paused = [asyncio.Event() for _ in texts]
        self.ended = [asyncio.Event() for _ in texts]
        self.final = [asyncio.Event() for _ in texts]

    async def transcribe(self, audio: AsyncIterator[bytes], *, on_partial=None, on_turn=None,  # noqa: ANN001
                         on_language=None, options=None) -> Transcript:  # noqa: ANN001
        index, self.calls = self.calls, self.calls + 1
        text = self.texts[index]
        async for chunk in audio:
            if any(chunk):
                break  # their voice
        assert on_partial is not None and on_turn is not None
        on_partial(text.rstrip("?."))  # no sentence end yet: our own eager end stays out of it
        await self.paused[index].wait()
        await on_turn(TurnEvent("eager_end", 1.0, None, text))
        await on_turn(TurnEvent("end", 1.5, "threshold", text))
        self.ended[index].set()
        await self.final[index].wait()
        return Transcript(text=text, language="en", audio_seconds=1.5, partial_updates=1, end_reason="threshold")


async def test_speech_right_after_turn_end_is_the_next_turn_and_the_withdrawn_question_leads_it(
    database: Database,
) -> None:
    # two_sentences: turn.end confirms the reply to the first sentence; the member goes on before
    # that turn's final transcript came (and before the reply was heard). Their speech must open
    # the next transcription at once (not be lost in the ended one's queue), the unheard reply is
    # withdrawn, and its question leads the next turn once the first turn's final transcript came.
    answerer, transcriber, bus = RecordingAnswerer(), ServerTurnsTranscriber([FIRST, SECOND]), events.EventBus()
    meter = SlowMeter()
    meter.release.set()  # admits at once

    clock = iter(range(1_000_000)).__next__  # the injected clock: a tick per reading
    listening = server_listening(database, transcriber, meter, answerer, bus=bus, clock=lambda: float(clock()))

    def interruption_policy(event: events.SpeechStarted) -> None:  # its part here: an unheard reply
        withdrawn = answerer.withdraw(event.user_id)
        if withdrawn:
            listening.carry(event.user_id, withdrawn)

    bus.subscribe(events.SpeechStarted, interruption_policy)
    listening.on_heard(7, SpeechStarted(at=0.0, detected_at=0.0))
    listening.on_heard(7, UtteranceAudio(VOICE))
    try:
        async with asyncio.timeout(5):
            transcriber.paused[0].set()
            await transcriber.ended[0].wait()
            assert [t.text for t in answerer.enqueued] == [FIRST] and answerer.confirmed == [1]
            for _ in range(3):  # they go on, within the same utterance of ours
                listening.on_heard(7, UtteranceAudio(VOICE))
            transcriber.final[0].set()  # the first turn's final transcript comes after that
            for _ in range(50):
                await asyncio.sleep(0)
            transcriber.paused[1].set()
            await transcriber.ended[1].wait()
            transcriber.final[1].set()
            listening.on_heard(7, UtteranceEnded(duration=3.0, reason="silence", at=3.0))
            while listening._transcriptions:
                await asyncio.sleep(0.01)
    finally:
        await listening.stop()
    assert [t.text for t in answerer.enqueued] == [FIRST, f"{FIRST} {SECOND}"]
    assert answerer.gone == {1}  # the reply to the first sentence alone was withdrawn unheard
    assert answerer.confirmed == [1, 2]  # the whole question is answered


class NoWordsTranscriber:
    """A transcript of punctuation only ("... ?!": a cough or a breath), which looks like a
    finished sentence to the early trigger; ``paused`` once 0.3 s of silence has been streamed."""

    turn_detection_available = True
    TEXT = " ... ?! "

    def __init__(self) -> None:
        self.paused = asyncio.Event()

    async def transcribe(self, audio: AsyncIterator[bytes], *, on_partial=None, on_turn=None,  # noqa: ANN001
                         on_language=None, options=None) -> Transcript:  # noqa: ANN001
        received = silent = 0
        async for chunk in audio:
            if any(chunk):
                if on_partial is not None:
                    on_partial(self.TEXT)
            else:
                silent += len(chunk)
                if silent >= 9_600:  # 0.3 s: well past the early trigger's 0.1 s
                    self.paused.set()
            received += len(chunk)
        return Transcript(text=self.TEXT, language="en", audio_seconds=received / 32_000, partial_updates=1)


async def test_a_transcript_without_words_never_starts_an_early_reply(database: Database) -> None:
    # Our early trigger fires on a finished-looking sentence after a short pause; punctuation
    # alone ("... ?!") must start no turn there either, as it starts none at the end of the turn
    # (seen in CI: the noise turn was confirmed and answered, and the real question interrupted it).
    meter, answerer, transcriber = SlowMeter(), RecordingAnswerer(), NoWordsTranscriber()
    meter.admits = 1  # SlowMeter holds only its first admit: let every admit through

    listening = server_listening(database, transcriber, meter, answerer)
    start_speaking(listening, VOICE * 10)
    try:
        async with asyncio.timeout(10):
            await transcriber.paused.wait()
            await end_and_settle(listening)
    finally:
        await listening.stop()
    assert answerer.enqueued == []
    assert meter.admits == 1  # nothing was admitted as a turn


class LatePartialTranscriber:
    """The member's voice, then a pause: the finished sentence's text comes only once 0.12 s of
    silence has been streamed (the server's text trails its audio), between two silence frames."""

    turn_detection_available = True

    def __init__(self, probe: Callable[[], int]) -> None:
        self.probe = probe  # tasks listening runs for the member
        self.tasks_after_partial: int | None = None
        self.tasks_before_partial: int | None = None

    async def transcribe(self, audio: AsyncIterator[bytes], *, on_partial=None, on_turn=None,  # noqa: ANN001
                         on_language=None, options=None) -> Transcript:  # noqa: ANN001
        assert on_partial is not None
        received = silent = 0
        async for chunk in audio:
            received += len(chunk)
            if any(chunk):
                on_partial(QUESTION.rstrip("?"))  # mid-sentence while they talk
                continue
            silent += len(chunk)
            if silent >= 3_840 and self.tasks_after_partial is None:  # 0.12 s of silence streamed
                self.tasks_before_partial = self.probe()
                on_partial(QUESTION)
                self.tasks_after_partial = self.probe()
        return Transcript(text=QUESTION, language="en", audio_seconds=received / 32_000, partial_updates=2)


async def test_our_early_start_fires_when_the_finished_text_comes_into_a_long_enough_pause(
    database: Database,
) -> None:
    # The pause was already long enough when the text ending the sentence came: the reply starts
    # then, not at the next 20 ms of streamed silence (the room benchmark: up to 20 ms, and up to
    # 50 ms before the silence was streamed at once after the client's silence frames).
    meter, answerer = SlowMeter(), RecordingAnswerer()
    meter.admits = 1  # let every admit through
    listening: Listening
    transcriber = LatePartialTranscriber(lambda: len(listening._transcriptions))
    listening = server_listening(database, transcriber, meter, answerer)
    start_speaking(listening, VOICE)
    try:
        async with asyncio.timeout(10):
            while transcriber.tasks_after_partial is None:  # noqa: ASYNC110 - the transcriber runs on its own
                await asyncio.sleep(0.01)
            await end_and_settle(listening)
    finally:
        await listening.stop()
    assert transcriber.tasks_after_partial == (transcriber.tasks_before_partial or 0) + 1  # the early turn
    assert [turn.text for turn in answerer.enqueued] == [QUESTION]
    assert answerer.enqueued[0].timings.trigger == "early"


class CountingStore(ConversationStore):
    def __init__(self, database: Database) -> None:
        super().__init__(database, GUILD, history_turns=10, history_chars=4000)
        self.read_aheads = 0

    def read_ahead(self):  # noqa: ANN201 - ReadAhead
        self.read_aheads += 1
        return super().read_ahead()


async def test_the_history_is_read_while_the_turn_is_admitted_not_after(database: Database) -> None:
    # The admit (rate limits, budget: database round trips) and the history read both stand
    # between our early start and the chat request: they run side by side.
    meter, answerer, transcriber = SlowMeter(), RecordingAnswerer(), TurnsTranscriber()
    store = CountingStore(database)
    listening = server_listening(database, transcriber, meter, answerer, store=store)
    start_speaking(listening, b"\0\x10" * 3_200)
    try:
        async with asyncio.timeout(10):
            await meter.asked.wait()  # our early start is being admitted
            assert store.read_aheads == 1  # and its history is being read already
            meter.release.set()
            while not answerer.enqueued:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            await end_and_settle(listening)
    finally:
        await listening.stop()
    assert answerer.enqueued[0].ahead is not None  # the read-ahead went with the turn
