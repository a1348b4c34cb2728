"""A database that cannot be opened is one readable error, and the URL's password shows in no
error and no repr."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.store import Database, DatabaseOpenError
from bot.store.engine import create_engine
from bot.store.url import parse_database_url

from .support import sqlite_url

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def test_unreachable_database_is_a_readable_error_without_password(tmp_path: Path) -> None:
    # A directory where the database file should be: SQLite cannot open it.
    (tmp_path / "voxcord.db").mkdir()
    with pytest.raises(DatabaseOpenError) as caught:
        await Database.open(sqlite_url(tmp_path))
    assert "voxcord.db" in str(caught.value)
    # aiosqlite 0.22 stops the worker thread of a failed connect without awaiting it; let it
    # finish while this test's event loop is still open, or it raises "Event loop is closed".
    for thread in threading.enumerate():
        if thread.name.endswith("(_connection_worker_thread)"):
            await asyncio.to_thread(thread.join, 5)


async def test_postgres_open_failure_hides_password() -> None:
    # Port 1 on localhost refuses at once; no server is needed for this test.
    with pytest.raises(DatabaseOpenError) as caught:
        await Database.open("postgresql://bot:hunter2@127.0.0.1:1/voxcord")
    assert "hunter2" not in str(caught.value)
    assert "bot:***@127.0.0.1:1/voxcord" in str(caught.value)


def test_repr_hides_password() -> None:
    url = parse_database_url("postgresql://bot:hunter2@host/db")
    assert "hunter2" not in repr(Database(create_engine(url), url, clock=lambda: T0))
