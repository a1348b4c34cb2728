"""Fixtures for the store tests.

Every repository test runs against each backend in BACKENDS. SQLite gets a fresh file per
test. PostgreSQL runs only when VOXCORD_TEST_POSTGRES_URL names a database the tests may wipe
(its Voxcord tables are dropped before each test); otherwise those cases are skipped.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.store import Database
from bot.store.engine import create_engine
from bot.store.url import parse_database_url

from .support import FakeClock

POSTGRES_ENV = "VOXCORD_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", "postgresql"]
_TABLES = ("turns", "usage_records", "voice_clips", "guild_settings", "member_privacy", "caption_messages",
           "caption_lines", "schema_version")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


async def _wipe_postgres(url: str) -> None:
    engine = create_engine(parse_database_url(url))
    try:
        async with engine.begin() as connection:
            for table in _TABLES:
                await connection.execute(text(f"DROP TABLE IF EXISTS {table} CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        # A nested folder that does not exist yet: open() must create it.
        return f"sqlite:///{tmp_path / 'data' / 'voxcord.db'}"
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} not set; PostgreSQL backend not tested")
    await _wipe_postgres(url)
    return url


@pytest.fixture
async def database(database_url: str, clock: FakeClock) -> AsyncIterator[Database]:
    db = await Database.open(database_url, clock=clock)
    try:
        yield db
    finally:
        await db.close()
