"""The privacy tests' store: a fresh SQLite file whose "now" is pinned at ``NOW``."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.store import Database
from tests.bot.store.support import FakeClock

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
async def database(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Database]:
    db = await Database.open(f"sqlite:///{tmp_path / 'voxcord.db'}", clock=clock)
    try:
        yield db
    finally:
        await db.close()
