"""Voxtral 3 realtime semantics the fake imitates: which models have them, and server turn detection.

The real service derives turn events from the model's "semantic voice activity detection". The
fake stands in with an energy detector over the PCM it received (so a test controls speech and
silence with the audio itself) plus a crude semantic cue: a turn whose text so far ends
mid-thought ("... capital of") is not ended on ``min_silence_ms`` but only on ``end_timeout_ms``.
Everything is measured in AUDIO time, from the samples received, as the server does: a client
that stops sending during a pause stops the fake's clock too.

Timing per 80 ms frame (Voxtral's encoder produces one frame per 80 ms), evaluated when the
frame's last byte arrives:

- ``turn.start`` once ``start_speech_ms`` of speech in a row arrived; ``time_s`` = speech onset.
- ``turn.eager_end`` once ``eager_silence_ms`` of silence followed the speech (before
  ``min_silence_ms``); ``time_s`` = the audio time of the decision.
- ``turn.resume`` when speech comes back after an eager end; ``time_s`` = where it came back.
- ``turn.end`` with ``end_reason`` ``threshold`` no sooner than ``min_silence_ms`` of silence (and
  only if the text so far looks complete), or ``timeout`` after ``end_timeout_ms`` of silence.

Measured with the defaults through ``StreamingTranscriber``, audio streamed in real time (zeros
through the pause), 10 runs, machine loaded: ``turn.eager_end`` p50 376 ms and ``turn.end`` p50
696 ms after the last speech chunk, the transcript 200 ms later with ``latency.stt_final`` 0.2.
Text trails its audio by the streaming delay (480 ms unless set), so the text carried by
``turn.eager_end`` is complete only with ``target_streaming_delay_ms`` of about 160 or less.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Voxtral 3 realtime ids and aliases (Mistral's "Migrate from Voxtral 2" page; -latest moved to 3).
_VOXTRAL_3_REALTIME = re.compile(r"^voxtral-[a-z]+-transcribe-realtime-(3(-\d+)?|latest)$")

# Words after which a speaker is rarely done: a pause here is a thinking pause.
_CONTINUATIONS = frozenset({
    "a", "an", "and", "at", "because", "but", "for", "from", "in", "is", "like", "my", "of", "on",
    "or", "so", "than", "that", "the", "to", "uh", "um", "with", "your", "de", "du", "le", "la", "et",
})


def is_voxtral_3_realtime(model: str) -> bool:
    return _VOXTRAL_3_REALTIME.match(model) is not None


def looks_complete(text: str) -> bool:
    """The fake's "semantic" end-of-turn cue: False when ``text`` stops mid-thought."""
    stripped = text.rstrip()
    if not stripped:
        return True
    if stripped.endswith(("...", "…", ",", "-", "—")):
        return False
    return stripped.split()[-1].strip(".,;:").lower() not in _CONTINUATIONS


@dataclass(slots=True)
class TurnModel:
    """How the fake's Voxtral 3 behaves; a test may change any field before the session starts."""

    frame_ms: int = 80
    start_speech_ms: int = 160
    """Speech in a row before ``turn.start`` (a click or a cough does not open a turn)."""
    eager_silence_ms: int = 240
    """Silence after speech before ``turn.eager_end``."""
    speech_dbfs: float = -45.0
    """A frame louder than this (RMS, dB full scale) is speech."""
    default_streaming_delay_ms: int = 480
    """Text deltas trail their audio by the session's ``target_streaming_delay_ms``, or this."""
    default_end_timeout_ms: int = 3000
    event_delay: float = 0.08
    """Seconds from a frame's arrival to its turn event (one encoder frame of processing)."""
    jitter: float = 0.03
    """Up to this many extra seconds on every streamed event (order is kept)."""
    complete: Callable[[str], bool] = field(default=looks_complete)
    """Whether the text so far is a finished thought (see ``looks_complete``)."""


@dataclass(frozen=True, slots=True)
class TurnSettings:
    min_silence_ms: int
    end_timeout_ms: int | None

    @classmethod
    def from_session(cls, config: dict[str, Any], model: TurnModel) -> TurnSettings:
        # An absent end_timeout_ms means the server default; an explicit null means none.
        timeout = config.get("end_timeout_ms", model.default_end_timeout_ms)
        return cls(min_silence_ms=int(config.get("min_silence_ms", 500)), end_timeout_ms=timeout)


def validate_turn_detection(config: dict[str, Any]) -> str | None:
    """The error message for an impossible ``turn_detection``, or ``None`` if it is acceptable."""
    start = config.get("start_threshold", 0.5)
    eager = config.get("eager_end_threshold", 0.5)
    end = config.get("end_threshold", 0.33)
    for name, value in (("start_threshold", start), ("eager_end_threshold", eager), ("end_threshold", end)):
        if not 0.0 <= value <= 1.0:
            return f"turn_detection.{name} must be between 0 and 1"
    if not start >= eager > end:
        return "turn_detection thresholds must satisfy start_threshold >= eager_end_threshold > end_threshold"
    min_silence = config.get("min_silence_ms", 500)
    if min_silence < 0:
        return "turn_detection.min_silence_ms must not be negative"
    timeout = config.get("end_timeout_ms")
    if timeout is not None and timeout < min_silence:
        return "turn_detection.end_timeout_ms must be at least min_silence_ms"
    return None


_DTYPES = {"pcm_s16le": ("<i2", 32768.0), "pcm_s32le": ("<i4", 2147483648.0),
           "pcm_f16le": ("<f2", 1.0), "pcm_f32le": ("<f4", 1.0)}
_WIDTHS = {"pcm_s16le": 2, "pcm_s32le": 4, "pcm_f16le": 2, "pcm_f32le": 4}


def bytes_per_second(audio_format: dict[str, Any]) -> int:
    return _WIDTHS.get(audio_format["encoding"], 1) * int(audio_format["sample_rate"])


def is_speech(frame: bytes, encoding: str, dbfs: float) -> bool:
    """Energy detector: RMS above ``dbfs``. Companded encodings count as speech (not analysed)."""
    spec = _DTYPES.get(encoding)
    if spec is None:
        return True
    dtype, full_scale = spec
    samples = np.frombuffer(frame, dtype=dtype).astype(np.float64) / full_scale
    if samples.size == 0:
        return False
    rms = float(np.sqrt(np.mean(samples * samples)))
    return rms > 0 and 20 * np.log10(rms) > dbfs


class TurnTracker:
    """The turn state machine over frames of audio time. Pure: feed frames, get event dicts."""

    def __init__(self, settings: TurnSettings, model: TurnModel) -> None:
        self._settings = settings
        self._model = model
        self._state = "idle"
        self._speech_ms = 0
        self._silence_ms = 0

    @property
    def in_turn(self) -> bool:
        return self._state != "idle"

    def feed(self, end_ms: int, speech: bool, text: Callable[[], str]) -> list[dict[str, Any]]:
        """Advance by one frame ending at ``end_ms`` of audio time; ``text()`` is the text so far."""
        frame = self._model.frame_ms
        events: list[dict[str, Any]] = []
        if self._state == "idle":
            self._speech_ms = self._speech_ms + frame if speech else 0
            if self._speech_ms >= self._model.start_speech_ms:
                events.append(_event("turn.start", end_ms - self._speech_ms))
                self._state, self._silence_ms = "speaking", 0
            return events
        if speech:
            if self._state == "eager":
                events.append(_event("turn.resume", end_ms - frame))
            self._state, self._silence_ms = "speaking", 0
            return events
        self._silence_ms += frame
        if self._state == "speaking" and self._silence_ms >= self._model.eager_silence_ms:
            events.append(_event("turn.eager_end", end_ms))
            self._state = "eager"
        if self._state == "eager":
            reason = self._end_reason(text)
            if reason is not None:
                events.append({**_event("turn.end", end_ms), "end_reason": reason})
                self._state, self._speech_ms = "idle", 0
        return events

    def _end_reason(self, text: Callable[[], str]) -> str | None:
        timeout = self._settings.end_timeout_ms
        if self._silence_ms >= self._settings.min_silence_ms and self._model.complete(text()):
            return "threshold"
        if timeout is not None and self._silence_ms >= timeout:
            return "timeout"
        return None


def _event(kind: str, at_ms: int) -> dict[str, Any]:
    return {"type": kind, "time_s": round(at_ms / 1000, 3)}
