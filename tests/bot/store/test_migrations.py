"""The migrator: each version applied once, in order and in one transaction, recorded in
schema_version, also when several openers race; a database newer than the code is refused.
What the migrations build: test_schema.py."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from bot.store import Database, SchemaTooNewError, Turn
from bot.store.engine import create_engine
from bot.store.migrations import MIGRATIONS, Migration
from bot.store.migrator import check_sequence
from bot.store.url import parse_database_url

from .support import LATEST, REPO_ROOT, FakeClock, sqlite_rows, sqlite_url

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NEXT = LATEST + 1  # a migration the tests add on top of the real ones


def _noop(_connection: Connection) -> None:
    pass


def _versions(tmp_path: Path) -> list[tuple[object, ...]]:
    return sqlite_rows(tmp_path / "voxcord.db", "SELECT version FROM schema_version ORDER BY version")


async def test_open_creates_the_schema_and_records_each_version(database_url: str, clock: FakeClock) -> None:
    async with Database.open(database_url, clock=clock) as db:
        assert await db.schema_version() == LATEST == 8
        engine = create_engine(parse_database_url(database_url))
        try:
            async with engine.connect() as connection:
                tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
                versions = (
                    (await connection.execute(text("SELECT version FROM schema_version ORDER BY version")))
                    .scalars()
                    .all()
                )
        finally:
            await engine.dispose()
    assert {"guild_settings", "turns", "voice_clips", "usage_records", "member_privacy", "caption_messages",
            "caption_lines"} <= tables
    assert list(versions) == [1, 2, 3, 4, 5, 6, 7, 8]


async def test_reopen_applies_nothing_twice_and_keeps_data(database_url: str, clock: FakeClock) -> None:
    async with Database.open(database_url, clock=clock) as db:
        await db.turns.add(Turn(None, 1, 7, "Ada", "user", "hello", T0))
        await db.guilds.update(1, persona="pirate")
    for _ in range(2):
        async with Database.open(database_url, clock=clock) as db:
            assert await db.schema_version() == LATEST
            assert [t.text for t in await db.turns.recent(1, limit=10)] == ["hello"]
            assert (await db.guilds.get(1)).persona == "pirate"


async def test_concurrent_opens_apply_each_migration_once(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    databases = await asyncio.gather(*(Database.open(url) for _ in range(6)))
    try:
        assert [await db.schema_version() for db in databases] == [LATEST] * 6
    finally:
        for db in databases:
            await db.close()
    assert _versions(tmp_path) == [(v,) for v in range(1, LATEST + 1)]


async def test_concurrent_opens_from_separate_processes(tmp_path: Path) -> None:
    # Two bot processes started against one fresh file (e.g. a restart overlapping the old one).
    script = textwrap.dedent(
        f"""
        import asyncio
        from bot.store import Database
        async def main():
            async with Database.open({sqlite_url(tmp_path)!r}) as db:
                print(await db.schema_version())
        asyncio.run(main())
        """
    )
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            cwd=REPO_ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(4)
    ]
    outputs = [await p.communicate() for p in processes]
    assert [p.returncode for p in processes] == [0] * 4, [err.decode() for _, err in outputs]
    assert [out.decode().strip() for out, _ in outputs] == [str(LATEST)] * 4
    assert _versions(tmp_path) == [(v,) for v in range(1, LATEST + 1)]


async def test_failed_migration_rolls_back_whole_and_stays_at_previous_version(tmp_path: Path) -> None:
    def broken(connection: Connection) -> None:
        connection.execute(text("CREATE TABLE half_done (id INTEGER PRIMARY KEY)"))
        connection.execute(text("INSERT INTO half_done (id) VALUES (1)"))
        raise RuntimeError("migration bug")

    url = sqlite_url(tmp_path)
    with pytest.raises(RuntimeError, match="migration bug"):
        await Database.open(url, migrations=(*MIGRATIONS, Migration(NEXT, "broken", broken)))
    tables = {name for (name,) in sqlite_rows(tmp_path / "voxcord.db", "SELECT name FROM sqlite_master")}
    assert "half_done" not in tables  # the DDL was inside the transaction, not autocommitted
    async with Database.open(url) as db:
        assert await db.schema_version() == LATEST


async def test_new_migration_applies_on_existing_database(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    async with Database.open(url) as db:
        await db.turns.add(Turn(None, 1, 7, "Ada", "user", "kept", T0))

    def add_column(connection: Connection) -> None:
        connection.execute(text("ALTER TABLE turns ADD COLUMN language TEXT"))

    async with Database.open(url, migrations=(*MIGRATIONS, Migration(NEXT, "language", add_column))) as db:
        assert await db.schema_version() == NEXT
        assert [t.text for t in await db.turns.recent(1, limit=5)] == ["kept"]
    assert ("language",) in sqlite_rows(tmp_path / "voxcord.db", "SELECT name FROM pragma_table_info('turns')")


async def test_database_newer_than_code_is_refused(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    async with Database.open(url, migrations=(*MIGRATIONS, Migration(NEXT, "future", _noop))):
        pass
    with pytest.raises(SchemaTooNewError, match=f"version {NEXT}"):
        await Database.open(url)


def test_migration_versions_must_be_contiguous() -> None:
    check_sequence(MIGRATIONS)
    with pytest.raises(ValueError, match="without gaps"):
        check_sequence((Migration(1, "a", _noop), Migration(3, "c", _noop)))
