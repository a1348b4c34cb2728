"""/usage show|budget|turn-rate|member-turn-rate|command-rate and the slash-command rate limit,
through the loopback Discord."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.store import GuildSettings
from tests.fakes.discord import FakeDiscord
from tests.harness import build_world, running_bot, settings_for


@pytest.fixture
def world(fake_discord: FakeDiscord, fake_discord_env: dict[str, str]):
    return build_world(fake_discord)


async def run(fake_discord: FakeDiscord, guild_id: int, user_id: int, command: str, **options: object):
    record = await fake_discord.invoke(guild_id=guild_id, user_id=user_id, command=command, options=options)
    return await record.wait_reply(timeout=10)


async def test_show_reports_this_months_use_and_cost(fake_discord, world, tmp_path: Path) -> None:
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        empty = await run(fake_discord, world.guild.id, world.member_id, "usage show")
        assert empty.ephemeral and "Nothing used yet" in empty.content and "none set" in empty.content
        assert bot.meter is not None
        await bot.meter.record(world.guild.id, world.member_id, "stt_seconds", 90)
        await bot.meter.record(world.guild.id, world.member_id, "chat_input_tokens", 1500)
        await bot.meter.record(world.guild.id, None, "tts_characters", 1000)
        shown = await run(fake_discord, world.guild.id, world.member_id, "usage show")
        assert "1 min 30 s" in shown.content and "$0.0120" in shown.content  # 1.5 min at $0.008
        assert "1,500" in shown.content and "$0.0160" in shown.content  # 1000 chars at $16 / M
        assert "**Total:** $0.0282" in shown.content


async def test_budget_and_turn_rate_are_for_admins(fake_discord, world, tmp_path: Path) -> None:
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        denied = await run(fake_discord, world.guild.id, world.member_id, "admin usage budget", usd=5.0)
        assert "Manage Server" in denied.content or "Manage Guild" in denied.content
        assert (await bot.database.guilds.get(world.guild.id)).monthly_budget_usd is None

        done = await run(fake_discord, world.guild.id, world.admin_id, "admin usage budget", usd=5.0)
        assert "$5.00" in done.content
        rate = await run(fake_discord, world.guild.id, world.admin_id, "admin usage turn-rate", per_minute=4)
        assert "4 spoken questions" in rate.content
        settings = await bot.database.guilds.get(world.guild.id)
        assert (settings.monthly_budget_usd, settings.turn_rate_per_minute) == (5.0, 4)
        shown = await run(fake_discord, world.guild.id, world.member_id, "usage show")
        assert "of $5.00 used" in shown.content and "4 a minute" in shown.content

        cleared = await run(fake_discord, world.guild.id, world.admin_id, "admin usage budget")
        assert "No monthly budget" in cleared.content
        assert (await bot.database.guilds.get(world.guild.id)).monthly_budget_usd is None


async def test_commands_over_the_rate_are_each_refused_with_a_short_private_reply(
    fake_discord, world, tmp_path: Path
) -> None:
    settings = settings_for(fake_discord, tmp_path, rate_user_commands_per_minute=2)
    async with running_bot(fake_discord, settings):
        for _ in range(2):
            assert "Usage for" in (await run(fake_discord, world.guild.id, world.member_id, "usage show")).content
        limited = await run(fake_discord, world.guild.id, world.member_id, "usage show")
        assert limited.ephemeral and "Slow down" in limited.content
        # Later refusals are answered too (Discord would show "did not respond" otherwise),
        # ephemeral and short: interaction callbacks do not count against the global rate limit.
        again = await run(fake_discord, world.guild.id, world.member_id, "usage show")
        assert again.ephemeral and "Slow down" in again.content and "Usage for" not in again.content
        other = await run(fake_discord, world.guild.id, world.admin_id, "usage show")
        assert "Usage for" in other.content, "another member is not limited"


async def test_rate_commands_are_for_admins_and_survive_a_restart(fake_discord, world, tmp_path: Path) -> None:
    settings = settings_for(fake_discord, tmp_path)
    async with running_bot(fake_discord, settings) as bot:
        shown = await run(fake_discord, world.guild.id, world.member_id, "usage show")
        assert "**Voice turn limit:** 30 a minute for the server (default), 8 a minute per member (default)." in (
            shown.content)
        assert "**Command limit:** 60 a minute for the server (default), 12 a minute per member (default)." in (
            shown.content)
        for command, options in (("admin usage member-turn-rate", {"per_minute": 1}),
                                 ("admin usage command-rate", {"per_member": 1, "per_server": 1})):
            denied = await run(fake_discord, world.guild.id, world.member_id, command, **options)
            assert denied.ephemeral and ("Manage Server" in denied.content or "Manage Guild" in denied.content)
        assert await bot.database.guilds.get(world.guild.id) == GuildSettings(guild_id=world.guild.id)

        member_rate = await run(fake_discord, world.guild.id, world.admin_id, "admin usage member-turn-rate",
                                per_minute=2)
        assert member_rate.ephemeral and "2 spoken questions a minute from each member" in member_rate.content
        command_rate = await run(fake_discord, world.guild.id, world.admin_id, "admin usage command-rate",
                                 per_member=20, per_server=90)
        assert command_rate.ephemeral and "20 commands a minute from each member and 90" in command_rate.content

    async with running_bot(fake_discord, settings) as bot:  # a restart: the store kept them
        shown = await run(fake_discord, world.guild.id, world.member_id, "usage show")
        assert "30 a minute for the server (default), 2 a minute per member (set here)." in shown.content
        assert "90 a minute for the server (set here), 20 a minute per member (set here)." in shown.content
        cleared = await run(fake_discord, world.guild.id, world.admin_id, "admin usage command-rate", per_member=30)
        assert "30 commands a minute from each member and 60 from the whole server" in cleared.content, (
            "an empty option goes back to the default")
        await run(fake_discord, world.guild.id, world.admin_id, "admin usage member-turn-rate")
        saved = await bot.database.guilds.get(world.guild.id)
        assert (saved.member_turn_rate_per_minute, saved.member_command_rate_per_minute,
                saved.command_rate_per_minute) == (None, 30, None)


async def test_out_of_range_rates_are_refused_by_discord_before_the_bot(fake_discord, world, tmp_path: Path) -> None:
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        admin = next(c for c in bot.tree.get_commands() if c.name == "admin")
        command = next(c for c in admin.commands if c.name == "usage")
        ranges = {(sub.name, p.name): (p.min_value, p.max_value)
                  for sub in command.commands for p in sub.parameters if p.name.startswith("per_")}
        assert ranges == {("turn-rate", "per_minute"): (1, 600), ("member-turn-rate", "per_minute"): (1, 600),
                          ("command-rate", "per_member"): (1, 600), ("command-rate", "per_server"): (1, 600)}


async def test_an_admins_command_rate_limits_the_next_command_over_it(fake_discord, world, tmp_path: Path) -> None:
    carol = fake_discord.snowflakes.next()
    world.guild.add_member(carol, "carol")
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)):
        await run(fake_discord, world.guild.id, world.admin_id, "admin usage command-rate", per_member=2, per_server=3)
        for _ in range(2):
            assert "Usage for" in (await run(fake_discord, world.guild.id, world.member_id, "usage show")).content
        limited = await run(fake_discord, world.guild.id, world.member_id, "usage show")
        assert limited.ephemeral and "Slow down" in limited.content
        again = await run(fake_discord, world.guild.id, world.member_id, "usage show")
        assert again.ephemeral and "Slow down" in again.content, "every refusal is answered"
        # Carol's first command is the server's third.
        assert "Usage for" in (await run(fake_discord, world.guild.id, carol, "usage show")).content
        server_limited = await run(fake_discord, world.guild.id, carol, "usage show")
        assert server_limited.ephemeral and "This server is sending me too many commands" in server_limited.content
        # Members who can change the limit are never locked out by others using up the server's
        # commands (only their own per-member rate applies to them).
        for _ in range(2):
            assert "Usage for" in (await run(fake_discord, world.guild.id, world.admin_id, "usage show")).content
        # ...but their own per-member rate still does.
        admin_limited = await run(fake_discord, world.guild.id, world.admin_id, "usage show")
        assert admin_limited.ephemeral and "Slow down" in admin_limited.content
