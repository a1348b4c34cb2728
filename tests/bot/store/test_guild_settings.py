from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import event

from bot.store import Database, GuildSettings, InvalidSettingError

from .support import FakeClock

G1, G2 = 111111111111111111, 222222222222222222  # snowflake-sized: needs BIGINT


async def test_unsaved_guild_gets_defaults(database: Database) -> None:
    settings = await database.guilds.get(G1)
    assert settings == GuildSettings(guild_id=G1)
    assert settings.retention_days == 30
    assert settings.consent_mode == "opt_out"
    assert settings.addressing_mode == "auto"
    assert settings.updated_at is None


async def test_update_creates_row_then_merges_later_changes(database: Database, clock: FakeClock) -> None:
    first = await database.guilds.update(G1, persona="a calm librarian", retention_days=7)
    assert first.persona == "a calm librarian"
    assert first.retention_days == 7
    assert first.addressing_mode == "auto"  # untouched fields keep their defaults
    assert first.updated_at == clock.now

    clock.advance(timedelta(minutes=5))
    second = await database.guilds.update(
        G1,
        addressing_mode="wake_word",
        wake_word="vox",
        text_channel_id=333333333333333333,
        show_partial_transcripts=True,
        consent_mode="opt_in",
        monthly_budget_usd=12.5,
        turn_rate_per_minute=6,
    )
    assert second == GuildSettings(
        guild_id=G1,
        persona="a calm librarian",
        addressing_mode="wake_word",
        wake_word="vox",
        text_channel_id=333333333333333333,
        show_partial_transcripts=True,
        retention_days=7,
        consent_mode="opt_in",
        monthly_budget_usd=12.5,
        turn_rate_per_minute=6,
        updated_at=clock.now,
    )
    assert await database.guilds.get(G1) == second


async def test_update_can_clear_optional_fields(database: Database) -> None:
    await database.guilds.update(G1, persona="pirate", monthly_budget_usd=3.0)
    cleared = await database.guilds.update(G1, persona=None, monthly_budget_usd=None)
    assert cleared.persona is None
    assert cleared.monthly_budget_usd is None


async def test_update_without_changes_writes_nothing(database: Database) -> None:
    assert await database.guilds.update(G1) == GuildSettings(guild_id=G1)
    assert (await database.guilds.get(G1)).updated_at is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("guild_id", 5),
        ("updated_at", None),
        ("colour", "blue"),
        ("addressing_mode", "sometimes"),
        ("consent_mode", "maybe"),
        ("retention_days", 0),
        ("retention_days", True),
        ("retention_days", 7.5),
        ("show_partial_transcripts", "yes"),
        ("monthly_budget_usd", -1.0),
        ("monthly_budget_usd", float("nan")),
        ("turn_rate_per_minute", 0),
        ("text_channel_id", "123"),
        ("persona", "   "),
    ],
)
async def test_update_rejects_bad_fields_and_writes_nothing(database: Database, field: str, value: object) -> None:
    # A valid change alongside the bad one must not be written either.
    valid = {"persona": "ok"} if field != "persona" else {"retention_days": 9}
    with pytest.raises(InvalidSettingError) as caught:
        await database.guilds.update(G1, **valid, **{field: value})
    assert caught.value.field == field
    assert await database.guilds.get(G1) == GuildSettings(guild_id=G1)


async def test_concurrent_updates_of_different_fields_all_land(database: Database) -> None:
    # Each admin command upserts only its own field; none may overwrite another's with a stale read.
    await asyncio.gather(
        database.guilds.update(G1, persona="p"),
        database.guilds.update(G1, retention_days=3),
        database.guilds.update(G1, wake_word="vox"),
        database.guilds.update(G1, turn_rate_per_minute=4),
    )
    settings = await database.guilds.get(G1)
    assert (settings.persona, settings.retention_days, settings.wake_word, settings.turn_rate_per_minute) == (
        "p",
        3,
        "vox",
        4,
    )


async def test_guilds_are_isolated(database: Database) -> None:
    await database.guilds.update(G1, persona="only for G1", retention_days=2)
    assert await database.guilds.get(G2) == GuildSettings(guild_id=G2)
    await database.guilds.update(G2, retention_days=90)
    assert (await database.guilds.get(G1)).retention_days == 2


async def test_turn_taking_settings_round_trip_and_reject_nonsense(database: Database) -> None:
    assert (await database.guilds.get(G1)).language is None  # detect the language
    saved = await database.guilds.update(G1, language="fr", vocabulary="Lugdunum, Voxcord", heard_bots="42,43")
    again = await database.guilds.get(G1)
    assert (again.language, again.vocabulary, again.heard_bots) == ("fr", "Lugdunum, Voxcord", "42,43") == (
        saved.language, saved.vocabulary, saved.heard_bots)
    for field, value in (("language", "french"), ("language", "FR"), ("vocabulary", " "),
                         ("vocabulary", "x" * 1001), ("heard_bots", "42, bob")):
        with pytest.raises(InvalidSettingError):
            await database.guilds.update(G1, **{field: value})
    assert (await database.guilds.get(G1)).language == "fr"


async def test_the_captions_channel_is_stored_cleared_and_validated(database: Database) -> None:
    assert (await database.guilds.get(G1)).captions_channel_id is None, "off by default"
    saved = await database.guilds.update(G1, captions_channel_id=987654321098765432, persona="pirate")
    assert (await database.guilds.get(G1)).captions_channel_id == 987654321098765432
    assert (await database.guilds.update(G1, captions_channel_id=None)).persona == saved.persona
    assert (await database.guilds.get(G1)).captions_channel_id is None
    for bad in (0, -5, "123", True):
        with pytest.raises(InvalidSettingError):
            await database.guilds.update(G1, captions_channel_id=bad)


def _count_settings_reads(database: Database) -> list[str]:
    """Every SELECT on guild_settings the engine runs from now on."""
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "guild_settings" in statement:
            seen.append(statement)

    event.listen(database._engine.sync_engine, "before_cursor_execute", record)
    return seen


async def test_settings_are_read_from_the_database_once(database: Database) -> None:
    # Every utterance asks for its guild's settings several times; at 50 talking guilds those
    # reads queued for seconds in front of the STT connection (bench/scaling.py).
    await database.guilds.update(G1, persona="a calm librarian")
    reads = _count_settings_reads(database)
    first = await database.guilds.get(G1)
    again = await database.guilds.get(G1)
    assert first == again
    assert first.persona == "a calm librarian"
    assert len(reads) == 1
    await database.guilds.get(G2)  # never saved: its defaults are remembered too
    await database.guilds.get(G2)
    assert len(reads) == 2


async def test_update_is_seen_by_the_next_read(database: Database) -> None:
    assert (await database.guilds.get(G1)).persona is None
    await database.guilds.update(G1, persona="a calm librarian")
    assert (await database.guilds.get(G1)).persona == "a calm librarian"
    await database.guilds.update(G1, persona="a pirate")
    assert (await database.guilds.get(G1)).persona == "a pirate"
    assert (await database.guilds.get(G2)).persona is None


async def test_read_overlapping_an_update_is_not_kept(database: Database) -> None:
    # A read that started before an update committed may carry the old row: it must not be
    # cached over the update.
    reads = _count_settings_reads(database)
    stale = asyncio.ensure_future(database.guilds.get(G1))
    await database.guilds.update(G1, persona="a pirate")
    await stale
    assert (await database.guilds.get(G1)).persona == "a pirate"
    assert len(reads) >= 2  # the overlapping read was not trusted
