"""When does a member's turn end, and when does their voice interrupt the bot? (policies)

Hearing asks the policy how long a silence ends an utterance and how long it may run; answering
asks how long a tentative onset may pause a reply before it counts as noise. The defaults are
``LocalTurnDetection``: our own VAD and fixed delays, measured on this bot (see
docs/benchmarks.md: the 400 ms endpointing wait is the largest fixed part of a turn's latency).
Another policy (a model's end-of-turn signal, adaptive delays) is another class of this shape,
handed to ``ConversationEngine``; tests hand in short delays instead of patching module constants.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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


@dataclass(frozen=True, slots=True)
class LocalTurnDetection:
    """Our VAD's view with fixed delays: the bot's behaviour since its first release."""

    silence_end: float = 0.4
    max_utterance: float = 30.0
    # 60 ms of voice: fall quiet now rather than after the ~200 ms that confirm speech.
    onset_frames: int | None = 3
    # Speech is confirmed about 150-250 ms after an onset; half a second covers it with margin.
    onset_grace: float = 0.5

    def __post_init__(self) -> None:
        if self.silence_end <= 0 or self.max_utterance <= 0 or self.onset_grace < 0:
            raise ValueError("need silence_end > 0, max_utterance > 0 and onset_grace >= 0")


DEFAULT_TURN_DETECTION = LocalTurnDetection()
