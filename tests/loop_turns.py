"""Counting the event loop's turns: how tests say "in one wakeup" without timing anything."""

from __future__ import annotations

import asyncio


class LoopTurns:
    """Counts the event loop's iterations: a callback that schedules itself again runs once in each."""

    def __init__(self) -> None:
        self.count = 0
        self._loop = asyncio.get_running_loop()
        self._handle = self._loop.call_soon(self._tick)

    def _tick(self) -> None:
        self.count += 1
        self._handle = self._loop.call_soon(self._tick)

    def stop(self) -> None:
        self._handle.cancel()
