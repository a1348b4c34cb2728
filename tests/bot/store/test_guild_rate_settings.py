"""A guild's own rate limits in guild_settings (v3): stored, cleared, validated, on each backend."""

from __future__ import annotations

import asyncio

import pytest

from bot.store import Database, GuildSettings, InvalidSettingError

G1, G2 = 111111111111111111, 222222222222222222
RATES = ("member_turn_rate_per_minute", "member_command_rate_per_minute", "command_rate_per_minute")


async def test_rates_default_to_none_meaning_the_operators_default(database: Database) -> None:
    settings = await database.guilds.get(G1)
    assert [getattr(settings, name) for name in RATES] == [None, None, None]


async def test_rates_are_stored_kept_apart_from_other_settings_and_cleared(database: Database) -> None:
    await database.guilds.update(G1, persona="pirate", turn_rate_per_minute=20)
    saved = await database.guilds.update(
        G1, member_turn_rate_per_minute=2, member_command_rate_per_minute=5, command_rate_per_minute=600
    )
    assert (saved.persona, saved.turn_rate_per_minute) == ("pirate", 20), "other settings untouched"
    assert await database.guilds.get(G1) == saved
    assert [getattr(saved, name) for name in RATES] == [2, 5, 600]
    assert await database.guilds.get(G2) == GuildSettings(guild_id=G2), "per guild"

    cleared = await database.guilds.update(G1, member_command_rate_per_minute=None, command_rate_per_minute=None)
    assert [getattr(cleared, name) for name in RATES] == [2, None, None]


async def test_concurrent_rate_changes_all_land(database: Database) -> None:
    await asyncio.gather(*(database.guilds.update(G1, **{name: n}) for n, name in enumerate(RATES, start=1)))
    settings = await database.guilds.get(G1)
    assert [getattr(settings, name) for name in RATES] == [1, 2, 3]


@pytest.mark.parametrize("field", RATES)
@pytest.mark.parametrize("value", [0, -1, 2.5, True, "5"])
async def test_a_rate_must_be_a_positive_whole_number(database: Database, field: str, value: object) -> None:
    with pytest.raises(InvalidSettingError) as caught:
        await database.guilds.update(G1, persona="ok", **{field: value})
    assert caught.value.field == field
    assert await database.guilds.get(G1) == GuildSettings(guild_id=G1), "nothing written"
