"""A SQLite database file: made with its folder, WAL with full sync and foreign keys, shared by
two open databases, and what was committed survives a killed process; in memory, one database."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

from bot.store import Database, Turn
from bot.store.engine import create_engine
from bot.store.url import parse_database_url

from .support import LATEST, REPO_ROOT, sqlite_rows, sqlite_url

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def test_sqlite_file_and_its_folder_are_created(tmp_path: Path) -> None:
    path = tmp_path / "not" / "yet" / "there.db"
    async with Database.open(f"sqlite:///{path}") as db:
        assert db.dialect == "sqlite"
    assert path.is_file()
    assert sqlite_rows(path, "SELECT max(version) FROM schema_version") == [(LATEST,)]


async def test_two_open_databases_on_one_file_write_concurrently(tmp_path: Path) -> None:
    # Writers take the lock up front (BEGIN IMMEDIATE) and wait on busy_timeout, so
    # interleaved writes from two engines queue instead of failing with "database is locked".
    url = sqlite_url(tmp_path)
    async with Database.open(url) as first, Database.open(url) as second:
        await asyncio.gather(
            *(db.turns.add(Turn(None, 1, i, "x", "user", f"t{i}", T0)) for i in range(40) for db in (first, second))
        )
        assert await first.turns.count(1) == 80
        assert await second.turns.count(1) == 80


async def test_committed_rows_survive_kill_9(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    # The child commits, then dies without closing anything, the way SIGKILL would leave it.
    script = textwrap.dedent(
        f"""
        import asyncio, os
        from datetime import datetime, UTC
        from bot.store import Database, Turn
        async def main():
            db = await Database.open({url!r})
            await db.turns.add(Turn(None, 1, 7, "Ada", "user", "committed", datetime.now(UTC)))
            await db.guilds.update(1, retention_days=9)
            os._exit(0)
        asyncio.run(main())
        """
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, cwd=REPO_ROOT, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await child.communicate()
    assert child.returncode == 0, stderr.decode()
    async with Database.open(url) as db:
        assert [t.text for t in await db.turns.recent(1, limit=5)] == ["committed"]
        assert (await db.guilds.get(1)).retention_days == 9


async def test_sqlite_connections_use_wal_full_sync_and_foreign_keys(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    async with Database.open(url):
        pass
    engine = create_engine(parse_database_url(url))
    try:
        async with engine.connect() as connection:

            async def pragma(name: str) -> object:
                return (await connection.exec_driver_sql(f"PRAGMA {name}")).scalar_one()

            assert await pragma("journal_mode") == "wal"
            assert await pragma("synchronous") == 2  # FULL
            assert await pragma("foreign_keys") == 1
            assert await pragma("busy_timeout") == 10_000
    finally:
        await engine.dispose()
    # WAL is a property of the file, so any other reader (backups, sqlite3 shell) sees it too.
    assert sqlite_rows(tmp_path / "voxcord.db", "PRAGMA journal_mode") == [("wal",)]


async def test_in_memory_sqlite_is_one_consistent_database() -> None:
    async with Database.open("sqlite://") as db:
        await asyncio.gather(*(db.guilds.update(g, retention_days=g) for g in range(1, 6)))
        assert [(await db.guilds.get(g)).retention_days for g in range(1, 6)] == [1, 2, 3, 4, 5]
