"""Where the time goes in one turn, from the end of someone's speech to the bot's first packet.

Each stage boundary is a monotonic timestamp from an injected clock, so tests set them exactly
and the numbers can be compared across stages measured in different threads (the playback thread
records when the first packet left).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal, get_args

Stage = Literal[
    "speech_end",
    "transcript_final",
    "first_token",
    "first_sentence",
    "first_tts_audio",
    "confirmed",
    "first_packet_ready",
    "first_packet_sent",
    "done",
]
Trigger = Literal["early", "eager_end", "final"]
# In pipeline order (the order of the Literal above); durations are measured between
# consecutive recorded stages. "confirmed" (a provisional turn's end confirmed, so its held audio
# may be heard) is recorded for provisional turns only and may come before the stages it follows
# here; "first_packet_ready" is FFmpeg's first packet, before the playout prebuffer's wait.
STAGES: tuple[Stage, ...] = get_args(Stage)
DEFAULT_LOG_SIZE = 50


def _check(stage: str) -> None:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}")


@dataclass(slots=True)
class TurnTimings:
    """Monotonic timestamps (seconds) of one turn's stage boundaries; None until reached."""

    clock: Callable[[], float] = field(repr=False, compare=False)
    stamps: dict[Stage, float] = field(default_factory=dict)
    # What started the reply: "early" (our finished-looking partial and a pause), "eager_end" (the
    # server's), or "final" (the final transcript); speech_end is then when it fired.
    trigger: Trigger | None = None

    def mark(self, stage: Stage) -> float:
        """Record ``stage`` as reached now, replacing an earlier mark."""
        return self._set(stage, self.clock())

    def mark_once(self, stage: Stage) -> float:
        """Record ``stage`` now unless already recorded: "first_token" stays the first one."""
        _check(stage)
        return self.stamps[stage] if stage in self.stamps else self._set(stage, self.clock())

    def mark_at(self, stage: Stage, at: float | None) -> None:
        """Record a time measured elsewhere (e.g. in the playback thread); None means not reached."""
        if at is not None:
            self._set(stage, at)

    def _set(self, stage: Stage, at: float) -> float:
        _check(stage)
        self.stamps[stage] = at
        return at

    def at(self, stage: Stage) -> float | None:
        return self.stamps.get(stage)

    def steps_ms(self) -> dict[Stage, float]:
        """For each recorded stage after the first, ms since the previous recorded stage."""
        out: dict[Stage, float] = {}
        previous: float | None = None
        for stage in STAGES:
            stamp = self.stamps.get(stage)
            if stamp is None:
                continue
            if previous is not None:
                out[stage] = (stamp - previous) * 1000
            previous = stamp
        return out

    def since_speech_end_ms(self) -> dict[Stage, float]:
        """For each recorded stage after speech_end, ms since speech_end (empty without it)."""
        start = self.stamps.get("speech_end")
        if start is None:
            return {}
        return {
            stage: (self.stamps[stage] - start) * 1000
            for stage in STAGES[1:]
            if stage in self.stamps
        }


@dataclass(frozen=True, slots=True)
class StageSummary:
    count: int
    median_ms: float
    p95_ms: float


def _p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile: an observed value, honest for the few samples we keep."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


class TimingsLog:
    """The last ``maxlen`` turns of one guild, summarised for ``/status``."""

    def __init__(self, maxlen: int = DEFAULT_LOG_SIZE) -> None:
        if maxlen <= 0:
            raise ValueError("maxlen must be positive")
        self._turns: deque[TurnTimings] = deque(maxlen=maxlen)

    def add(self, timings: TurnTimings) -> None:
        self._turns.append(timings)

    def __len__(self) -> int:
        return len(self._turns)

    def __iter__(self) -> Iterator[TurnTimings]:
        return iter(self._turns)

    def summary(self) -> dict[Stage, StageSummary]:
        """Per stage, the median and p95 of ms since speech_end over the turns that reached it."""
        samples: dict[Stage, list[float]] = {}
        for turn in self._turns:
            for stage, ms in turn.since_speech_end_ms().items():
                samples.setdefault(stage, []).append(ms)
        return {
            stage: StageSummary(len(values), statistics.median(values), _p95(values))
            for stage in STAGES
            if (values := samples.get(stage))
        }

    def describe(self) -> list[str]:
        """One human-readable line per stage, e.g. "first_packet_sent: median 820 ms, p95 ..."."""
        return [
            f"{stage}: median {s.median_ms:.0f} ms, p95 {s.p95_ms:.0f} ms (n={s.count})"
            for stage, s in self.summary().items()
        ]


class GuildTimings:
    """One bounded ``TimingsLog`` per guild."""

    def __init__(self, maxlen: int = DEFAULT_LOG_SIZE) -> None:
        self._maxlen = maxlen
        self._logs: dict[int, TimingsLog] = {}

    def log(self, guild_id: int) -> TimingsLog:
        if guild_id not in self._logs:
            self._logs[guild_id] = TimingsLog(self._maxlen)
        return self._logs[guild_id]

    def forget(self, guild_id: int) -> None:
        self._logs.pop(guild_id, None)
