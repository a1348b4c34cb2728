from __future__ import annotations

import asyncio
import sqlite3
import sys
import textwrap
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_mock_engine, insert, inspect, text
from sqlalchemy.engine import Connection

from bot.store import CaptionLine, CaptionMessage, Database, DatabaseOpenError, SchemaTooNewError, Turn
from bot.store.engine import create_engine
from bot.store.migrations import MIGRATIONS, Migration
from bot.store.migrator import check_sequence
from bot.store.schema import guild_settings, metadata, voice_clips
from bot.store.url import parse_database_url

from .support import FakeClock

REPO_ROOT = Path(__file__).resolve().parents[3]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LATEST = len(MIGRATIONS)
NEXT = LATEST + 1  # a migration the tests add on top of the real ones


def _sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'voxcord.db'}"


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    # A plain sqlite3 connection: checks what is really in the file, not what the store says.
    with sqlite3.connect(path) as connection:
        return connection.execute(sql).fetchall()


def _noop(_connection: Connection) -> None:
    pass


def _versions(tmp_path: Path) -> list[tuple[object, ...]]:
    return _rows(tmp_path / "voxcord.db", "SELECT version FROM schema_version ORDER BY version")


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


async def test_live_schema_matches_what_migrations_build(database_url: str, clock: FakeClock) -> None:
    # schema.py is written by hand next to the migrations; this catches the two drifting apart.
    async with Database.open(database_url, clock=clock):
        pass
    engine = create_engine(parse_database_url(database_url))

    def reflect(connection: Connection) -> dict[str, tuple[set[str], set[str]]]:
        inspector = inspect(connection)
        return {
            name: (
                {c["name"] for c in inspector.get_columns(name)},
                {i["name"] for i in inspector.get_indexes(name) if i["name"]},
            )
            for name in inspector.get_table_names()
        }

    try:
        async with engine.connect() as connection:
            reflected = await connection.run_sync(reflect)
    finally:
        await engine.dispose()
    for table in metadata.tables.values():
        assert table.name in reflected, table.name
        assert {c.name for c in table.columns} == reflected[table.name][0], table.name
    assert reflected["turns"][1] >= {"ix_turns_guild_created", "ix_turns_guild_speaker", "ix_turns_created"}
    assert "ix_usage_guild_recorded" in reflected["usage_records"][1]
    assert "ix_caption_messages_guild_posted" in reflected["caption_messages"][1]
    assert "ix_caption_lines_user" in reflected["caption_lines"][1]


async def test_reopen_applies_nothing_twice_and_keeps_data(database_url: str, clock: FakeClock) -> None:
    async with Database.open(database_url, clock=clock) as db:
        await db.turns.add(Turn(None, 1, 7, "Ada", "user", "hello", T0))
        await db.guilds.update(1, persona="pirate")
    for _ in range(2):
        async with Database.open(database_url, clock=clock) as db:
            assert await db.schema_version() == LATEST
            assert [t.text for t in await db.turns.recent(1, limit=10)] == ["hello"]
            assert (await db.guilds.get(1)).persona == "pirate"


async def test_v3_upgrades_a_v2_database_keeping_its_rows(database_url: str, clock: FakeClock) -> None:
    # A database last opened by the v2 code, with a guild that set everything v2 knew about.
    async with Database.open(database_url, clock=clock, migrations=MIGRATIONS[:2]) as db:
        await db.turns.add(Turn(None, 1, 7, "Ada", "user", "before v3", T0))
    v2_row = {
        "guild_id": 1, "persona": "pirate", "addressing_mode": "always", "wake_word": "vox",
        "text_channel_id": 42, "show_partial_transcripts": True, "retention_days": 9, "consent_mode": "opt_in",
        "monthly_budget_usd": 4.5, "turn_rate_per_minute": 6, "updated_at": T0,
    }
    engine = create_engine(parse_database_url(database_url))
    try:
        async with engine.begin() as connection:
            # Only v2's columns: the statement names exactly the ones given.
            await connection.execute(insert(guild_settings).values(**v2_row))
    finally:
        await engine.dispose()

    async with Database.open(database_url, clock=clock) as db:
        assert await db.schema_version() == LATEST
        settings = await db.guilds.get(1)
        assert {name: getattr(settings, name) for name in v2_row} == v2_row
        new_rates = ("member_turn_rate_per_minute", "member_command_rate_per_minute", "command_rate_per_minute")
        assert [getattr(settings, name) for name in new_rates] == [None, None, None], "NULL: the operator default"
        assert [t.text for t in await db.turns.recent(1, limit=5)] == ["before v3"]
        updated = await db.guilds.update(1, member_turn_rate_per_minute=2, command_rate_per_minute=90)
        assert (updated.member_turn_rate_per_minute, updated.command_rate_per_minute, updated.persona) == (
            2, 90, "pirate")
    async with Database.open(database_url, clock=clock) as db:
        assert (await db.guilds.get(1)).member_turn_rate_per_minute == 2, "kept across a reopen"


async def test_v4_adds_the_captions_channel_off_for_every_existing_guild(database_url: str, clock: FakeClock) -> None:
    # A database last opened by the v3 code, with a guild row naming only v3's columns.
    async with Database.open(database_url, clock=clock, migrations=MIGRATIONS[:3]):
        pass
    v3_row = {
        "guild_id": 1, "persona": "pirate", "addressing_mode": "auto", "wake_word": None, "text_channel_id": 42,
        "show_partial_transcripts": False, "retention_days": 30, "consent_mode": "opt_out",
        "monthly_budget_usd": None, "turn_rate_per_minute": None, "updated_at": T0,
        "member_turn_rate_per_minute": None, "member_command_rate_per_minute": None, "command_rate_per_minute": 90,
    }
    engine = create_engine(parse_database_url(database_url))
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(guild_settings).values(**v3_row))
    finally:
        await engine.dispose()
    async with Database.open(database_url, clock=clock) as db:
        assert await db.schema_version() == LATEST
        settings = await db.guilds.get(1)
        assert settings.captions_channel_id is None, "captions stay off until an admin turns them on"
        assert {name: getattr(settings, name) for name in v3_row} == v3_row
        await db.guilds.update(1, captions_channel_id=77)
    async with Database.open(database_url, clock=clock) as db:
        settings = await db.guilds.get(1)
        assert (settings.captions_channel_id, settings.persona) == (77, "pirate")


async def test_v5_adds_turn_taking_settings_empty_for_every_existing_guild(database_url: str, clock: FakeClock) -> None:
    async with Database.open(database_url, clock=clock, migrations=MIGRATIONS[:4]):
        pass
    v4_row = {
        "guild_id": 1, "persona": "pirate", "addressing_mode": "auto", "wake_word": None, "text_channel_id": 42,
        "show_partial_transcripts": False, "retention_days": 30, "consent_mode": "opt_out",
        "monthly_budget_usd": None, "turn_rate_per_minute": None, "updated_at": T0,
        "member_turn_rate_per_minute": None, "member_command_rate_per_minute": None, "command_rate_per_minute": None,
        "captions_channel_id": 77,
    }
    engine = create_engine(parse_database_url(database_url))
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(guild_settings).values(**v4_row))
    finally:
        await engine.dispose()
    async with Database.open(database_url, clock=clock) as db:
        assert await db.schema_version() == LATEST
        settings = await db.guilds.get(1)
        assert (settings.language, settings.vocabulary, settings.heard_bots) == (None, None, None)
        assert (settings.persona, settings.captions_channel_id) == ("pirate", 77)


async def test_v6_adds_an_unprepared_voice_to_every_existing_clip(database_url: str, clock: FakeClock) -> None:
    async with Database.open(database_url, clock=clock, migrations=MIGRATIONS[:5]):
        pass
    v5_clip = {"guild_id": 1, "audio": b"RIFF" * 10, "sample_rate": 24_000, "duration_s": 1.0, "sha256": "ab",
               "source_format": "wav/pcm_s16le", "set_by_id": 2, "set_by_name": "ada", "set_at": T0}
    engine = create_engine(parse_database_url(database_url))
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(voice_clips).values(**v5_clip))
    finally:
        await engine.dispose()
    async with Database.open(database_url, clock=clock) as db:
        assert await db.schema_version() == LATEST
        stored = await db.clips.get(1)
        assert stored is not None and (stored.audio, stored.set_by_name) == (b"RIFF" * 10, "ada")
        assert (stored.voice_id, stored.reference, stored.prepared) == (None, None, False)


async def test_v7_adds_autojoin_off_for_every_existing_guild(database_url: str, clock: FakeClock) -> None:
    # A database last opened by the v6 code, with a guild row naming only v4's columns.
    async with Database.open(database_url, clock=clock, migrations=MIGRATIONS[:6]):
        pass
    engine = create_engine(parse_database_url(database_url))
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(guild_settings).values(
                guild_id=1, persona="pirate", addressing_mode="auto", show_partial_transcripts=False,
                retention_days=30, consent_mode="opt_out", updated_at=T0, captions_channel_id=77))
    finally:
        await engine.dispose()
    async with Database.open(database_url, clock=clock, migrations=MIGRATIONS[:7]) as db:
        assert await db.schema_version() == 7
        settings = await db.guilds.get(1)
        assert settings.autojoin_channel_id is None, "auto-join stays off until an admin turns it on"
        assert (settings.persona, settings.captions_channel_id) == ("pirate", 77)
        await db.guilds.update(1, autojoin_channel_id=55)
    async with Database.open(database_url, clock=clock) as db:
        assert (await db.guilds.get(1)).autojoin_channel_id == 55


async def test_v8_adds_empty_caption_records_keeping_turns_and_settings(database_url: str, clock: FakeClock) -> None:
    # A database last opened by the v7 code: captions on, a turn stored, no caption records yet.
    async with Database.open(database_url, clock=clock, migrations=MIGRATIONS[:7]) as db:
        await db.guilds.update(1, captions_channel_id=77)
        await db.turns.add(Turn(None, 1, 7, "Ada", "user", "before v8", T0))
    async with Database.open(database_url, clock=clock) as db:
        assert await db.schema_version() == LATEST == 8
        assert (await db.guilds.get(1)).captions_channel_id == 77
        assert [t.text for t in await db.turns.recent(1, limit=5)] == ["before v8"]
        assert await db.captions.guild_ids() == []  # messages posted before v8 were never recorded
        message = CaptionMessage(guild_id=1, channel_id=77, message_id=123, posted_at=T0, length=9,
                                 lines=(CaptionLine(7, 0, 9),))
        await db.captions.add(message)
    async with Database.open(database_url, clock=clock) as db:
        assert await db.captions.get(123) == message


async def test_sqlite_file_and_its_folder_are_created(tmp_path: Path) -> None:
    path = tmp_path / "not" / "yet" / "there.db"
    async with Database.open(f"sqlite:///{path}") as db:
        assert db.dialect == "sqlite"
    assert path.is_file()
    assert _rows(path, "SELECT max(version) FROM schema_version") == [(LATEST,)]


async def test_concurrent_opens_apply_each_migration_once(tmp_path: Path) -> None:
    url = _sqlite_url(tmp_path)
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
            async with Database.open({_sqlite_url(tmp_path)!r}) as db:
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


async def test_two_open_databases_on_one_file_write_concurrently(tmp_path: Path) -> None:
    # Writers take the lock up front (BEGIN IMMEDIATE) and wait on busy_timeout, so
    # interleaved writes from two engines queue instead of failing with "database is locked".
    url = _sqlite_url(tmp_path)
    async with Database.open(url) as first, Database.open(url) as second:
        await asyncio.gather(
            *(db.turns.add(Turn(None, 1, i, "x", "user", f"t{i}", T0)) for i in range(40) for db in (first, second))
        )
        assert await first.turns.count(1) == 80
        assert await second.turns.count(1) == 80


async def test_committed_rows_survive_kill_9(tmp_path: Path) -> None:
    url = _sqlite_url(tmp_path)
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


async def test_failed_migration_rolls_back_whole_and_stays_at_previous_version(tmp_path: Path) -> None:
    def broken(connection: Connection) -> None:
        connection.execute(text("CREATE TABLE half_done (id INTEGER PRIMARY KEY)"))
        connection.execute(text("INSERT INTO half_done (id) VALUES (1)"))
        raise RuntimeError("migration bug")

    url = _sqlite_url(tmp_path)
    with pytest.raises(RuntimeError, match="migration bug"):
        await Database.open(url, migrations=(*MIGRATIONS, Migration(NEXT, "broken", broken)))
    tables = {name for (name,) in _rows(tmp_path / "voxcord.db", "SELECT name FROM sqlite_master")}
    assert "half_done" not in tables  # the DDL was inside the transaction, not autocommitted
    async with Database.open(url) as db:
        assert await db.schema_version() == LATEST


async def test_new_migration_applies_on_existing_database(tmp_path: Path) -> None:
    url = _sqlite_url(tmp_path)
    async with Database.open(url) as db:
        await db.turns.add(Turn(None, 1, 7, "Ada", "user", "kept", T0))

    def add_column(connection: Connection) -> None:
        connection.execute(text("ALTER TABLE turns ADD COLUMN language TEXT"))

    async with Database.open(url, migrations=(*MIGRATIONS, Migration(NEXT, "language", add_column))) as db:
        assert await db.schema_version() == NEXT
        assert [t.text for t in await db.turns.recent(1, limit=5)] == ["kept"]
    assert ("language",) in _rows(tmp_path / "voxcord.db", "SELECT name FROM pragma_table_info('turns')")


async def test_database_newer_than_code_is_refused(tmp_path: Path) -> None:
    url = _sqlite_url(tmp_path)
    async with Database.open(url, migrations=(*MIGRATIONS, Migration(NEXT, "future", _noop))):
        pass
    with pytest.raises(SchemaTooNewError, match=f"version {NEXT}"):
        await Database.open(url)


def test_migration_versions_must_be_contiguous() -> None:
    check_sequence(MIGRATIONS)
    with pytest.raises(ValueError, match="without gaps"):
        check_sequence((Migration(1, "a", _noop), Migration(3, "c", _noop)))


async def test_sqlite_connections_use_wal_full_sync_and_foreign_keys(tmp_path: Path) -> None:
    url = _sqlite_url(tmp_path)
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
    assert _rows(tmp_path / "voxcord.db", "PRAGMA journal_mode") == [("wal",)]


async def test_in_memory_sqlite_is_one_consistent_database() -> None:
    async with Database.open("sqlite://") as db:
        await asyncio.gather(*(db.guilds.update(g, retention_days=g) for g in range(1, 6)))
        assert [(await db.guilds.get(g)).retention_days for g in range(1, 6)] == [1, 2, 3, 4, 5]


async def test_unreachable_database_is_a_readable_error_without_password(tmp_path: Path) -> None:
    # A directory where the database file should be: SQLite cannot open it.
    (tmp_path / "voxcord.db").mkdir()
    with pytest.raises(DatabaseOpenError) as caught:
        await Database.open(_sqlite_url(tmp_path))
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


def _ddl(url: str) -> str:
    # A mock engine records the DDL each migration would run, so the PostgreSQL flavour is
    # checked here even where no server is available.
    statements: list[str] = []

    def record(statement: Any, *_args: object, **_kwargs: object) -> None:
        statements.append(str(statement.compile(dialect=engine.dialect)))

    engine = create_mock_engine(url, record)
    for migration in MIGRATIONS:
        migration.upgrade(engine)  # type: ignore[arg-type]  # a MockConnection quacks enough
    return "\n".join(" ".join(s.split()) for s in statements)


def test_postgres_ddl_uses_native_types() -> None:
    ddl = _ddl("postgresql+asyncpg://")
    assert "id BIGSERIAL NOT NULL" in ddl
    assert "audio BYTEA NOT NULL" in ddl
    assert "created_at TIMESTAMP WITH TIME ZONE NOT NULL" in ddl
    assert "guild_id BIGINT NOT NULL" in ddl
    assert "CREATE INDEX ix_turns_guild_speaker ON turns (guild_id, speaker_id)" in ddl
    assert "ALTER TABLE guild_settings ADD COLUMN member_turn_rate_per_minute INTEGER" in ddl


def test_sqlite_ids_are_rowid_aliases() -> None:
    # Only a column declared exactly INTEGER PRIMARY KEY gets automatic ids in SQLite.
    ddl = _ddl("sqlite+aiosqlite://")
    assert "CREATE TABLE turns ( id INTEGER NOT NULL," in ddl
    assert "audio BLOB NOT NULL" in ddl
