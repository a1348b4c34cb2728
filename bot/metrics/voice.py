"""Voice sessions and DAVE decrypt failures, read from each connection's own receive counters.

The voice transport counts DAVE failures per connection (bot/voice/stats.py, bumped from the
socket reader thread). This module only reads them: at each scrape it sums the live sessions'
counters and those of sessions already ended, so the exported counter never goes down when a
session leaves.
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol, TypeVar

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from bot.metrics.families import Metrics
from bot.voice.stats import DaveStats, ReceiveStats


class Session(Protocol):
    """What a voice session (bot/sessions.py ``VoiceSession``) offers here."""

    @property
    def guild_id(self) -> int: ...

    @property
    def voice_client(self) -> object: ...


S = TypeVar("S", bound=Session)


def _dave_stats(voice_client: object) -> DaveStats | None:
    stats = getattr(voice_client, "receive_stats", None)  # VoxcordVoiceClient; a plain one has none
    return stats.dave if isinstance(stats, ReceiveStats) else None


class VoiceMetrics(Collector):
    """Session hooks plus the collector of ``voxcord_dave_decrypt_failures_total``."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._live: dict[int, DaveStats | None] = {}
        self._ended: collections.Counter[str] = collections.Counter()
        metrics.registry.register(self)

    def started(self, session: Session) -> None:
        if session.guild_id not in self._live:
            self._metrics.voice_sessions_started.inc()
        self._live[session.guild_id] = _dave_stats(session.voice_client)
        self._metrics.voice_sessions.set(len(self._live))

    def stopped(self, session: Session) -> None:
        stats = self._live.pop(session.guild_id, None)
        if stats is not None:
            self._ended.update(dict(stats.failures))
        self._metrics.voice_sessions.set(len(self._live))

    def hooks(
        self, on_start: Callable[[S], Awaitable[None]], on_stop: Callable[[S], Awaitable[None]]
    ) -> tuple[Callable[[S], Awaitable[None]], Callable[[S], Awaitable[None]]]:
        """The sessions service's hooks, with this module told first (it never raises)."""

        async def start(session: S) -> None:
            self.started(session)
            await on_start(session)

        async def stop(session: S) -> None:
            self.stopped(session)
            await on_stop(session)

        return start, stop

    def dave_failures(self) -> dict[str, int]:
        totals = collections.Counter(self._ended)
        for stats in list(self._live.values()):
            if stats is not None:
                # dict() copies under the GIL in one step, so the reader thread adding a reason
                # meanwhile cannot break the iteration.
                totals.update(dict(stats.failures))
        return dict(totals)

    def describe(self) -> Iterable[CounterMetricFamily]:
        return [self._family()]

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = self._family()
        for reason, count in sorted(self.dave_failures().items()):
            family.add_metric([reason], count)
        return [family]

    @staticmethod
    def _family() -> CounterMetricFamily:
        return CounterMetricFamily(
            "voxcord_dave_decrypt_failures", "DAVE (end-to-end) frames that could not be decrypted, by reason.",
            labels=["reason"],
        )
