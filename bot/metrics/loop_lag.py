"""Event-loop lag: how late the loop wakes a task that asked to sleep a fixed interval.

Everything in Voxcord shares one loop (the gateway, the voice receive hand-off, the answering
pipeline); a late loop is the first sign of overload (docs/benchmarks.md: the 50-guild bend).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from bot.tasks import Worker

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 0.5


class LoopLagMonitor:
    """Sleeps ``interval`` over and over and reports each oversleep to ``observe`` (seconds)."""

    def __init__(
        self,
        observe: Callable[[float], None],
        *,
        interval: float = DEFAULT_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._observe = observe
        self._interval = interval
        self._clock = clock
        self._sleep = sleep
        self._worker = Worker(self.run, name="loop-lag-monitor")

    async def run(self) -> None:
        while True:
            started = self._clock()
            await self._sleep(self._interval)
            self._observe(max(0.0, self._clock() - started - self._interval))

    def start(self) -> None:
        self._worker.start()

    async def stop(self) -> None:
        await self._worker.stop()

    async def __aenter__(self) -> LoopLagMonitor:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
