"""Hearing notices the end of an utterance when the speaker's silence is over, not at a tick."""

from __future__ import annotations

import asyncio

from bot.audio.utterances import Event, SpeechStarted, UtteranceEnded
from bot.conversation.hearing import Hearing
from bot.conversation.turn_detection import LocalTurnDetection
from tests.bot.audio.test_utterances import ScriptedVad, frame


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[int, Event]] = []
        self.ended = asyncio.Event()

    def on_heard(self, user_id: int, event: Event) -> None:
        self.events.append((user_id, event))
        if isinstance(event, UtteranceEnded):
            self.ended.set()


async def test_the_gap_timer_ends_an_utterance_without_waiting_for_the_tick() -> None:
    recorder = Recorder()
    # The periodic tick is an hour away: only the per-speaker timer can end the utterance.
    hearing = Hearing(recorder, vad_factory=ScriptedVad, tick_interval=3600,
                      turn_detection=LocalTurnDetection(silence_end=0.05, onset_frames=None))
    hearing.start()
    try:
        for tag in range(15):
            hearing.on_speaker_frame(7, frame(True, tag), 0)
            await asyncio.sleep(0.005)  # audio keeps coming: the timer re-arms instead of ending it
        assert not recorder.ended.is_set()
        await asyncio.wait_for(recorder.ended.wait(), timeout=5)
    finally:
        await hearing.stop()
    kinds = [type(event) for _, event in recorder.events]
    assert kinds[0] is SpeechStarted
    ended = [event for _, event in recorder.events if isinstance(event, UtteranceEnded)]
    assert len(ended) == 1 and ended[0].reason == "gap"
    assert not hearing.speaking(7)


async def test_a_speaker_who_leaves_takes_their_timer_along() -> None:
    recorder = Recorder()
    hearing = Hearing(recorder, vad_factory=ScriptedVad, tick_interval=3600,
                      turn_detection=LocalTurnDetection(silence_end=0.05, onset_frames=None))
    hearing.start()
    try:
        for tag in range(12):
            hearing.on_speaker_frame(7, frame(True, tag), 0)
        hearing.on_speaker_gone(7)
        await asyncio.sleep(0.15)  # past when the timer would have fired
    finally:
        await hearing.stop()
    ended = [event for _, event in recorder.events if isinstance(event, UtteranceEnded)]
    assert len(ended) == 1  # from on_speaker_gone, not a second one from a stale timer
