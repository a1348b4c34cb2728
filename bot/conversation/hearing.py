"""Hearing: each speaker's 16 kHz frames in, attributed utterance events out (turn segmentation).

Sits between the receive path (a ``SpeechSink``) and the conversation: one segmenter and one
VAD per speaker (the VAD's noise floor is per microphone), and a timer per speaker, because
Discord clients signal silence by simply no longer sending packets: it fires when the speaker's
silence would end the utterance, so the end of a turn is noticed on time rather than at the next
tick (a periodic tick stays as the backstop). The timer is lazy, not re-armed per packet: when it
fires early (audio kept coming) it re-arms for the remaining time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from bot.audio.utterances import Event, UtteranceSegmenter
from bot.audio.vad import GatedSileroVad, VoiceActivityDetector
from bot.conversation.turn_detection import DEFAULT_TURN_DETECTION, TurnDetection

log = logging.getLogger(__name__)


class HearingConsumer(Protocol):
    def on_heard(self, user_id: int, event: Event) -> None:
        """Called on the event loop, in order per speaker: [VoiceOnset,] SpeechStarted, UtteranceAudio…,
        UtteranceEnded."""
        ...


class Hearing:
    def __init__(
        self,
        consumer: HearingConsumer,
        *,
        clock: Callable[[], float] = time.monotonic,
        # The engine passes one that shares its SileroPool; this default has a pool per speaker.
        vad_factory: Callable[[], VoiceActivityDetector] = GatedSileroVad,
        turn_detection: TurnDetection = DEFAULT_TURN_DETECTION,
        # Only the backstop: each speaker's gap timer notices the end of speech on time. At 20 ms
        # (as before the timers) 50 joined guilds woke the loop 2,500 times a second, talking or not.
        tick_interval: float = 0.25,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._consumer = consumer
        self._clock = clock
        self._vad_factory = vad_factory
        self._turns = turn_detection
        self._tick_interval = tick_interval
        self._sleep = sleep
        self._speakers: dict[int, UtteranceSegmenter] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gap_timers: dict[int, asyncio.TimerHandle] = {}

    @property
    def speakers(self) -> frozenset[int]:
        return frozenset(self._speakers)

    def speaking(self, user_id: int) -> bool:
        segmenter = self._speakers.get(user_id)
        return segmenter is not None and segmenter.speaking

    def start(self) -> None:
        if self._ticker is None:
            self._loop = asyncio.get_running_loop()
            self._ticker = self._loop.create_task(self._tick_forever(), name="hearing-ticks")

    async def stop(self) -> None:
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        self._loop = None
        for timer in self._gap_timers.values():
            timer.cancel()
        self._gap_timers.clear()
        now = self._clock()
        for user_id in list(self._speakers):
            self._deliver(user_id, self._speakers.pop(user_id).close(now))

    # SpeechSink -----------------------------------------------------------------------------

    def on_speaker_frame(self, user_id: int, pcm16k: bytes, rtp_timestamp: int) -> None:
        segmenter = self._speakers.get(user_id)
        if segmenter is None:
            segmenter = self._speakers[user_id] = UtteranceSegmenter(
                self._vad_factory(), clock=self._clock,
                silence_end=self._turns.silence_end, max_utterance=self._turns.max_utterance,
                onset_frames=self._turns.onset_frames,
            )
        self._deliver(user_id, segmenter.push(pcm16k, self._clock()))
        if user_id not in self._gap_timers and self._loop is not None:
            self._arm_gap_timer(user_id, self._turns.silence_end)

    def on_speaker_gone(self, user_id: int) -> None:
        timer = self._gap_timers.pop(user_id, None)
        if timer is not None:
            timer.cancel()
        segmenter = self._speakers.pop(user_id, None)
        if segmenter is not None:
            self._deliver(user_id, segmenter.close(self._clock()))

    # ----------------------------------------------------------------------------------------

    def tick(self) -> None:
        now = self._clock()
        for user_id, segmenter in list(self._speakers.items()):
            self._deliver(user_id, segmenter.tick(now))

    def _arm_gap_timer(self, user_id: int, delay: float) -> None:
        assert self._loop is not None
        # A hair late rather than early: the segmenter ends the utterance only once the full
        # silence has passed on its own clock (an early firing just re-arms for the rest).
        self._gap_timers[user_id] = self._loop.call_later(delay + 0.0002, self._on_gap_timer, user_id)

    def _on_gap_timer(self, user_id: int) -> None:
        del self._gap_timers[user_id]
        segmenter = self._speakers.get(user_id)
        if segmenter is None:
            return
        now = self._clock()
        self._deliver(user_id, segmenter.tick(now))
        deadline = segmenter.gap_deadline
        if deadline is not None and self._loop is not None and user_id not in self._gap_timers:
            self._arm_gap_timer(user_id, max(deadline - now, 0.0))

    async def _tick_forever(self) -> None:
        while True:
            await self._sleep(self._tick_interval)
            self.tick()

    def _deliver(self, user_id: int, events: list[Event]) -> None:
        for event in events:
            try:
                self._consumer.on_heard(user_id, event)
            except Exception:
                # A consumer bug must not stop hearing everyone else.
                log.exception("Hearing consumer failed on %s for user %s", type(event).__name__, user_id)
