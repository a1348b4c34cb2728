"""Clocks for the limits tests: wall time as seconds and as datetimes, advanced together."""

from __future__ import annotations

import datetime as dt


class Clocks:
    """One settable instant, read as ``time.time``-style seconds or as an aware datetime."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def seconds(self) -> float:
        return self.now.timestamp()

    def wall(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)
