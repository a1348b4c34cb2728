"""What the migrations build: the schema the code declares, each version's upgrade of a database
the previous version's code left (its rows kept), and the DDL for each dialect."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, create_mock_engine, insert, inspect
from sqlalchemy.engine import Connection

from bot.store import CaptionLine, CaptionMessage, Database, Turn
from bot.store.engine import create_engine
from bot.store.migrations import MIGRATIONS
from bot.store.schema import guild_settings, metadata, voice_clips
from bot.store.url import parse_database_url

from .support import LATEST, FakeClock

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

# A guild row naming only the v3 schema's columns, as the v3 code wrote it (v4 adds to it).
V3_ROW: dict[str, Any] = {
    "guild_id": 1, "persona": "pirate", "addressing_mode": "auto", "wake_word": None, "text_channel_id": 42,
    "show_partial_transcripts": False, "retention_days": 30, "consent_mode": "opt_out",
    "monthly_budget_usd": None, "turn_rate_per_minute": None, "updated_at": T0,
    "member_turn_rate_per_minute": None, "member_command_rate_per_minute": None, "command_rate_per_minute": 90,
}


async def insert_row(database_url: str, table: Table, row: dict[str, Any]) -> None:
    """A row as an older version's code wrote it: the statement names exactly the columns given."""
    engine = create_engine(parse_database_url(database_url))
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(table).values(**row))
    finally:
        await engine.dispose()


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


async def test_v3_upgrades_a_v2_database_keeping_its_rows(database_url: str, clock: FakeClock) -> None:
    # A database last opened by the v2 code, with a guild that set everything v2 knew about.
    async with Database.open(database_url, clock=clock, migrations=MIGRATIONS[:2]) as db:
        await db.turns.add(Turn(None, 1, 7, "Ada", "user", "before v3", T0))
    v2_row = {
        "guild_id": 1, "persona": "pirate", "addressing_mode": "always", "wake_word": "vox",
        "text_channel_id": 42, "show_partial_transcripts": True, "retention_days": 9, "consent_mode": "opt_in",
        "monthly_budget_usd": 4.5, "turn_rate_per_minute": 6, "updated_at": T0,
    }
    await insert_row(database_url, guild_settings, v2_row)

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
    v3_row = dict(V3_ROW)
    await insert_row(database_url, guild_settings, v3_row)
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
    v4_row = V3_ROW | {"command_rate_per_minute": None, "captions_channel_id": 77}
    await insert_row(database_url, guild_settings, v4_row)
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
    await insert_row(database_url, voice_clips, v5_clip)
    async with Database.open(database_url, clock=clock) as db:
        assert await db.schema_version() == LATEST
        stored = await db.clips.get(1)
        assert stored is not None and (stored.audio, stored.set_by_name) == (b"RIFF" * 10, "ada")
        assert (stored.voice_id, stored.reference, stored.prepared) == (None, None, False)


async def test_v7_adds_autojoin_off_for_every_existing_guild(database_url: str, clock: FakeClock) -> None:
    # A database last opened by the v6 code, with a guild row naming only v4's columns.
    async with Database.open(database_url, clock=clock, migrations=MIGRATIONS[:6]):
        pass
    await insert_row(database_url, guild_settings, {
        "guild_id": 1, "persona": "pirate", "addressing_mode": "auto", "show_partial_transcripts": False,
        "retention_days": 30, "consent_mode": "opt_out", "updated_at": T0, "captions_channel_id": 77})
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
