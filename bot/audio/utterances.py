"""Per-speaker turn segmentation: 16 kHz mono PCM in, speech start / audio / end events out.

Discord signals silence by *not sending*: a client with voice activity detection stops
transmitting (after a few 0xF8 0xFF 0xFE silence frames) when its user stops talking. So an
utterance ends either when our VAD hears ``silence_end`` of non-speech, or when packets stop for
``silence_end`` (noticed by ``tick``, or by the next ``push`` arriving late).

Time comes from an injected clock so tests run in virtual time.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bot.audio.frames import FRAME_DURATION_S, STT_FRAME_BYTES
from bot.audio.vad import HoldsResources, VoiceActivityDetector

EndReason = Literal["silence", "max_length", "gap"]


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """A speaker started talking (the barge-in signal).

    ``at`` is when the first voiced frame of the opening run arrived; ``detected_at`` is when
    ``min_speech`` of voiced frames confirmed it (the event is emitted then).
    """

    at: float
    detected_at: float


@dataclass(frozen=True, slots=True)
class VoiceOnset:
    """A few voiced frames in a row: maybe speech, not yet confirmed (opt-in, ``onset_frames``).

    Lets a speaking bot fall quiet at once (barge-in) without waiting ``min_speech`` for
    ``SpeechStarted``; a consumer must treat it as tentative, since noise can cause it.
    """

    at: float


@dataclass(frozen=True, slots=True)
class UtteranceAudio:
    """The next piece of the current utterance: 16 kHz mono int16 PCM, whole 20 ms frames.
    The first piece includes up to ``preroll`` of audio from before the speech onset."""

    pcm: bytes


@dataclass(frozen=True, slots=True)
class UtteranceEnded:
    """The utterance is complete. ``duration`` is the seconds of audio emitted for it (pre-roll
    and trailing silence included); ``at`` is when the end was decided."""

    duration: float
    reason: EndReason
    at: float


Event = VoiceOnset | SpeechStarted | UtteranceAudio | UtteranceEnded


def _frames(seconds: float) -> int:
    # Round 0.2 / 0.02 = 9.999… up to 10 frames, not down to 9.
    return max(1, math.ceil(seconds / FRAME_DURATION_S - 1e-6))


class UtteranceSegmenter:
    """Turns one speaker's 16 kHz mono int16 stream into utterance events.

    ``push`` accepts any length of PCM (the resampler emits in uneven blocks); whole 20 ms frames
    are judged by the VAD and a partial one waits for the next push. An utterance opens once
    ``min_speech`` of voiced frames fall within a window 1.5× that long (short dropouts inside
    a syllable do not reset it), so isolated noise blips never start a turn.
    """

    def __init__(
        self,
        vad: VoiceActivityDetector,
        *,
        clock: Callable[[], float],
        silence_end: float = 0.4,
        min_speech: float = 0.2,
        max_utterance: float = 30.0,
        preroll: float = 0.2,
        onset_frames: int | None = None,
    ) -> None:
        if silence_end <= 0 or min_speech <= 0 or max_utterance <= min_speech or preroll < 0:
            raise ValueError("need silence_end > 0, min_speech > 0, max_utterance > min_speech, preroll >= 0")
        self._vad = vad
        self._clock = clock
        self._silence_end = silence_end
        self._min_frames = _frames(min_speech)
        self._window = max(self._min_frames, math.ceil(self._min_frames * 1.5))
        self._silence_frames = _frames(silence_end)
        self._max_frames = _frames(max_utterance)
        self._preroll_frames = 0 if preroll == 0 else _frames(preroll)
        # Idle state: recent frames (for pre-roll and the opening run) and their VAD verdicts.
        self._history: deque[tuple[bytes, bool, float]] = deque(maxlen=self._preroll_frames + self._window)
        self._voiced_in_window = 0
        # Speaking state.
        self._speaking = False
        self._utterance_frames = 0
        self._unvoiced_run = 0
        self._pending = b""
        self._last_arrival: float | None = None
        self._onset_frames = onset_frames
        self._voiced_run = 0
        self._onset_sent = False

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def gap_deadline(self) -> float | None:
        """When (on the injected clock) ``tick`` will call the stream over if nothing arrives."""
        return None if self._last_arrival is None else self._last_arrival + self._silence_end

    def push(self, frame: bytes, at: float | None = None) -> list[Event]:
        """Feed received audio (arrival time ``at``, default now). Returns the events it caused,
        in order; consecutive audio is merged into one ``UtteranceAudio``."""
        now = self._clock() if at is None else at
        events = self._check_gap(now)
        self._last_arrival = now
        data = self._pending + frame if self._pending else frame
        whole = len(data) - len(data) % STT_FRAME_BYTES
        self._pending = data[whole:]
        audio = bytearray()
        for start in range(0, whole, STT_FRAME_BYTES):
            self._frame(data[start : start + STT_FRAME_BYTES], now, events, audio)
        if audio:
            events.append(UtteranceAudio(bytes(audio)))
        return events

    def tick(self, now: float | None = None) -> list[Event]:
        """Call periodically (every ~100 ms): ends the utterance if packets stopped arriving."""
        return self._check_gap(self._clock() if now is None else now)

    def close(self, now: float | None = None) -> list[Event]:
        """The speaker left or the stream ended: end any open utterance (reason ``gap``), and let
        the VAD give back what it holds (a gated Silero VAD's pooled model)."""
        events: list[Event] = []
        if self._speaking:
            self._end("gap", self._clock() if now is None else now, events)
        self._reset_idle()
        self._pending = b""
        if isinstance(self._vad, HoldsResources):
            self._vad.close()
        return events

    def _check_gap(self, now: float) -> list[Event]:
        events: list[Event] = []
        last = self._last_arrival
        if last is not None and now - last >= self._silence_end:
            if self._speaking:
                self._end("gap", now, events)
            # Stale pre-roll from before the gap must not be glued onto the next utterance.
            self._reset_idle()
            self._pending = b""
            self._last_arrival = None
        return events

    def _frame(self, frame: bytes, now: float, events: list[Event], audio: bytearray) -> None:
        voiced = self._vad.is_speech(frame)
        if self._speaking:
            audio += frame
            self._utterance_frames += 1
            self._unvoiced_run = 0 if voiced else self._unvoiced_run + 1
            if self._unvoiced_run >= self._silence_frames:
                self._flush_audio(events, audio)
                self._end("silence", now, events)
            elif self._utterance_frames >= self._max_frames:
                self._flush_audio(events, audio)
                self._end("max_length", now, events)
            return

        history = self._history
        if len(history) >= self._window and history[-self._window][1]:
            # The oldest verdict of the opening window is about to slide out of it.
            self._voiced_in_window -= 1
        # (If the deque is full, appending drops an entry that already left the window.)
        history.append((frame, voiced, now))
        self._voiced_in_window += voiced
        if self._onset_frames is not None:
            self._voiced_run = self._voiced_run + 1 if voiced else 0
            if self._voiced_in_window == 0:
                self._onset_sent = False  # that tentative onset came to nothing
            if not self._onset_sent and self._voiced_run >= self._onset_frames:
                self._onset_sent = True
                events.append(VoiceOnset(at=now))
        if self._voiced_in_window >= self._min_frames:
            self._open(now, events, audio)

    def _open(self, now: float, events: list[Event], audio: bytearray) -> None:
        frames = list(self._history)
        window_start = max(0, len(frames) - self._window)
        onset = next(i for i in range(window_start, len(frames)) if frames[i][1])
        first = max(0, onset - self._preroll_frames)
        events.append(SpeechStarted(at=frames[onset][2], detected_at=now))
        for frame, _, _ in frames[first:]:
            audio += frame
        self._speaking = True
        self._utterance_frames = len(frames) - first
        self._unvoiced_run = 0  # the frame that completed the opening run was voiced
        self._reset_idle()

    def _flush_audio(self, events: list[Event], audio: bytearray) -> None:
        if audio:
            events.append(UtteranceAudio(bytes(audio)))
            audio.clear()

    def _end(self, reason: EndReason, now: float, events: list[Event]) -> None:
        events.append(UtteranceEnded(self._utterance_frames * FRAME_DURATION_S, reason, now))
        self._speaking = False
        self._utterance_frames = 0
        self._unvoiced_run = 0

    def _reset_idle(self) -> None:
        self._history.clear()
        self._voiced_in_window = 0
        self._voiced_run = 0
        self._onset_sent = False
