"""Helpers shared by the store tests."""

from __future__ import annotations

from datetime import datetime, timedelta


class FakeClock:
    """A settable 'now' so timestamps in tests are exact and nothing sleeps."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta
