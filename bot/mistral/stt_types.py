"""What a caller hands the streaming transcriber and gets back: session options, turn events, transcripts.

Kept apart from the transcriber so the conversation layer can import (and tests can build) these
small values without the SDK's realtime client.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from mistralai.client.models import TurnDetectionConfigTypedDict

TurnKind = Literal["start", "eager_end", "resume", "end"]
TurnDetectionMode = Literal["auto", "on", "off"]

# Voxtral 3 realtime ids and their aliases (Mistral's "Migrate from Voxtral 2" page:
# voxtral-mini-transcribe-realtime-3-0, -3, and -latest, which moved to Voxtral 3).
_VOXTRAL_3_REALTIME = re.compile(r"^voxtral-[a-z]+-transcribe-realtime-(3(-\d+)?|latest)$")


def is_voxtral_3_realtime(model: str) -> bool:
    """True for model ids that have turn detection, ``context_bias`` and ``language``."""
    return _VOXTRAL_3_REALTIME.match(model) is not None


@dataclass(frozen=True, slots=True)
class TurnDetectionSettings:
    """Server end-of-turn detection (``TurnDetectionConfig``). ``None`` keeps the server's default.

    Server defaults: start 0.5, eager end 0.5, end 0.33 (``start >= eager_end > end``),
    ``min_silence_ms`` 500, ``end_timeout_ms`` 3000 (at least ``min_silence_ms``).
    """

    start_threshold: float | None = None
    eager_end_threshold: float | None = None
    end_threshold: float | None = None
    min_silence_ms: int | None = None
    end_timeout_ms: int | None = None

    def to_sdk(self) -> TurnDetectionConfigTypedDict:
        config: TurnDetectionConfigTypedDict = {}
        if self.start_threshold is not None:
            config["start_threshold"] = self.start_threshold
        if self.eager_end_threshold is not None:
            config["eager_end_threshold"] = self.eager_end_threshold
        if self.end_threshold is not None:
            config["end_threshold"] = self.end_threshold
        if self.min_silence_ms is not None:
            config["min_silence_ms"] = self.min_silence_ms
        if self.end_timeout_ms is not None:
            config["end_timeout_ms"] = self.end_timeout_ms
        return config


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """Per-utterance settings, sent in ``session.update`` before the first audio chunk.

    A Voxtral 3 session locks its settings at the first audio chunk, so these cannot change
    mid-utterance. Fields the model does not support are left out (``context_bias``, ``language``
    and ``turn_detection`` go only to Voxtral 3 realtime models).
    """

    context_bias: tuple[str, ...] = ()
    """Names and terms to bias recognition toward (bot name, wake word, members, vocabulary)."""
    language: str | None = None
    """ISO-639-1 code of the speech, or ``None`` to detect it."""
    turn_detection: TurnDetectionSettings | None = None
    """Ask the server for turn events (only when ``StreamingTranscriber.turn_detection_available``)."""
    streaming_delay_ms: int | None = None
    """``target_streaming_delay_ms`` (80-1200, or 2400): how far text trails its audio."""


@dataclass(frozen=True, slots=True)
class TurnEvent:
    """One server turn event. ``time_s`` is AUDIO time: seconds of audio the session had received."""

    kind: TurnKind
    time_s: float
    end_reason: str | None = None
    """``threshold`` or ``timeout`` on ``end``; ``None`` otherwise."""
    text: str = ""
    """The transcript so far when the event arrived. Text trails its audio by the streaming delay,
    so at ``eager_end`` it may lack the last words unless ``streaming_delay_ms`` is short; the
    returned ``Transcript.text`` is always the whole utterance."""


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    language: str | None
    audio_seconds: float
    """Audio sent for this utterance (what STT bills), whoever ended it."""
    partial_updates: int
    source: Literal["realtime", "batch", "empty"] = "realtime"
    end_reason: str | None = None
    """``threshold``/``timeout``: the server's ``turn.end`` ended it; ``local``: the audio ran out."""
    turn_detection: bool = False
    """Server turn detection was on for the session that produced this transcript."""


PartialCallback = Callable[[str], Awaitable[None] | None]
TurnCallback = Callable[[TurnEvent], Awaitable[None] | None]
LanguageCallback = Callable[[str], Awaitable[None] | None]
