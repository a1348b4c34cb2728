"""When does a member's turn end, and when does their voice interrupt the bot? (policies)

Hearing asks the policy how long a silence ends an utterance and how long it may run; answering
asks how long a tentative onset may pause a reply before it counts as noise. The defaults are
``LocalTurnDetection``: our own VAD and fixed delays, measured on this bot (see
docs/benchmarks.md: the 400 ms endpointing wait is the largest fixed part of a turn's latency).
Another policy (a model's end-of-turn signal, adaptive delays) is another class of this shape,
handed to ``ConversationEngine``; tests hand in short delays instead of patching module constants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from bot.mistral.stt_types import SessionOptions, TurnDetectionSettings
from bot.store import GuildSettings

MAX_BIAS_TERMS = 100


class TurnDetection(Protocol):
    @property
    def silence_end(self) -> float:
        """Seconds of silence (or of no packets) that end an utterance."""
        ...

    @property
    def max_utterance(self) -> float:
        """An utterance longer than this is cut and transcribed as it stands."""
        ...

    @property
    def onset_frames(self) -> int | None:
        """Voiced 20 ms frames in a row that count as a tentative onset (None: no onsets)."""
        ...

    @property
    def onset_grace(self) -> float:
        """Seconds a tentative onset keeps a reply paused waiting for confirmed speech; past this
        it was noise and the reply resumes."""
        ...

    @property
    def server(self) -> TurnDetectionSettings | None:
        """Ask the transcription server for turn events with these settings (None: our own end
        of turn). With them, listening streams silence through pauses and the server decides."""
        ...

    @property
    def streaming_delay_ms(self) -> int | None:
        """How far the realtime transcript may trail its audio (None: the server's default)."""
        ...


@dataclass(frozen=True, slots=True)
class LocalTurnDetection:
    """Our VAD's view with fixed delays: the bot's behaviour since its first release."""

    silence_end: float = 0.4
    max_utterance: float = 30.0
    # 60 ms of voice: fall quiet now rather than after the ~200 ms that confirm speech.
    onset_frames: int | None = 3
    # Speech is confirmed about 150-250 ms after an onset; half a second covers it with margin.
    onset_grace: float = 0.5

    server: TurnDetectionSettings | None = None
    streaming_delay_ms: int | None = None

    def __post_init__(self) -> None:
        if self.silence_end <= 0 or self.max_utterance <= 0 or self.onset_grace < 0:
            raise ValueError("need silence_end > 0, max_utterance > 0 and onset_grace >= 0")


@dataclass(frozen=True, slots=True)
class ServerTurnDetection:
    """Voxtral 3's turn events end turns (``turn.eager_end`` starts a reply, held until
    ``turn.end``; ``turn.resume`` withdraws it). Our segmenter keeps the utterance open through
    pauses for ``silence_end`` (longer than the server's ``end_timeout_ms``, so the server always
    decides first; ours is the safety net when no turn ever started, e.g. a cough).

    ``min_silence_ms`` 500 is the server default; ``end_timeout_ms`` 1200 (default 3000) ends a
    trailing-off turn sooner and caps the streamed silence billed per turn (issue 12: STT billed
    per turn at most its speech + 1.5 s). A 160 ms streaming delay (default 480) puts the last
    words' text ahead of the eager end (which comes after ~240 ms of silence and a frame of
    processing), so the prepared reply answers the whole question; at 240 ms the two raced and
    about half the prepared replies were redone at ``turn.end`` (python -m bench.room).
    """

    silence_end: float = 1.5
    max_utterance: float = 30.0
    onset_frames: int | None = 3
    onset_grace: float = 0.5
    server: TurnDetectionSettings | None = field(
        default_factory=lambda: TurnDetectionSettings(min_silence_ms=500, end_timeout_ms=1200))
    streaming_delay_ms: int | None = 160


DEFAULT_TURN_DETECTION = LocalTurnDetection()
SERVER_TURN_DETECTION = ServerTurnDetection()


def session_options(
    settings: GuildSettings, bot_name: str, names: list[str], server: TurnDetection | None
) -> SessionOptions:
    """One utterance's transcription settings: recognition biased toward the bot's name, the wake
    word, the names in the channel and the guild's vocabulary; the guild's language; the server's
    turn detection when ``server`` (the policy) asks for it."""
    terms: list[str] = []
    for term in (bot_name, settings.wake_word, *names, *(settings.vocabulary or "").split(",")):
        cleaned = (term or "").strip()
        if cleaned and cleaned not in terms:
            terms.append(cleaned)
    return SessionOptions(context_bias=tuple(terms[:MAX_BIAS_TERMS]), language=settings.language,
                          turn_detection=server.server if server is not None else None,
                          streaming_delay_ms=server.streaming_delay_ms if server is not None else None)
