"""/history show|clear through the loopback Discord, per guild."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bot.store.models import Turn
from tests.fakes.discord import FakeDiscord
from tests.harness import build_world, running_bot, settings_for

EPHEMERAL = 64


@pytest.fixture
def worlds(fake_discord: FakeDiscord, fake_discord_env: dict[str, str]):
    return build_world(fake_discord, "First"), build_world(fake_discord, "Second")


def turn(guild_id: int, role: str, name: str, text: str, minutes: int, **extra: object) -> Turn:
    at = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC) + dt.timedelta(minutes=minutes)
    return Turn(id=None, guild_id=guild_id, speaker_id=None if role == "assistant" else 5,
                speaker_name=name, role=role, text=text, created_at=at, **extra)


async def test_show_lists_this_guilds_turns_only(fake_discord, worlds, tmp_path: Path) -> None:
    first, second = worlds
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        await bot.database.turns.add(turn(first.guild.id, "user", "alice", "What is the capital of France?", 0))
        await bot.database.turns.add(turn(first.guild.id, "assistant", "Voxcord", "Paris.", 1, interrupted=True))
        await bot.database.turns.add(turn(second.guild.id, "user", "carol", "Secret plans of guild two", 2))

        shown = await (await fake_discord.invoke(
            guild_id=first.guild.id, user_id=first.member_id, command="history show")).wait_reply(timeout=10)
        assert shown.flags & EPHEMERAL
        assert shown.content.index("capital of France") < shown.content.index("Paris.")
        assert "(interrupted)" in shown.content
        assert "Secret plans" not in shown.content

        other = await (await fake_discord.invoke(
            guild_id=second.guild.id, user_id=second.member_id, command="history show")).wait_reply(timeout=10)
        assert "Secret plans" in other.content and "Paris" not in other.content


async def test_show_with_no_history(fake_discord, worlds, tmp_path: Path) -> None:
    first, _ = worlds
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)):
        shown = await (await fake_discord.invoke(
            guild_id=first.guild.id, user_id=first.member_id, command="history show")).wait_reply(timeout=10)
        assert shown.content == "No conversation yet."


async def test_clear_needs_manage_server_and_clears_only_this_guild(fake_discord, worlds, tmp_path: Path) -> None:
    first, second = worlds
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        for minute in range(3):
            await bot.database.turns.add(turn(first.guild.id, "user", "alice", f"hello {minute}", minute))
        await bot.database.turns.add(turn(second.guild.id, "user", "carol", "keep me", 0))

        denied = await (await fake_discord.invoke(
            guild_id=first.guild.id, user_id=first.member_id, command="admin history clear")).wait_reply(timeout=10)
        assert denied.flags & EPHEMERAL and "Manage" in denied.content
        assert await bot.database.turns.count(first.guild.id) == 3

        cleared = await (await fake_discord.invoke(
            guild_id=first.guild.id, user_id=first.admin_id, command="admin history clear")).wait_reply(timeout=10)
        assert "Cleared 3 turns" in cleared.content
        assert await bot.database.turns.count(first.guild.id) == 0
        assert await bot.database.turns.count(second.guild.id) == 1


async def test_history_survives_a_restart(fake_discord, worlds, tmp_path: Path) -> None:
    first, _ = worlds
    settings = settings_for(fake_discord, tmp_path)
    async with running_bot(fake_discord, settings) as bot:
        await bot.database.turns.add(turn(first.guild.id, "user", "alice", "remember this", 0))
    async with running_bot(fake_discord, settings):
        shown = await (await fake_discord.invoke(
            guild_id=first.guild.id, user_id=first.member_id, command="history show")).wait_reply(timeout=10)
        assert "remember this" in shown.content


async def test_unknown_errors_get_a_generic_apology_and_are_logged(
    fake_discord, worlds, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    first, _ = worlds
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        async def broken(*_args: object, **_kwargs: object) -> list[Turn]:
            raise RuntimeError("disk on fire")

        # The repository is slotted, so the fault goes on its class (our own code, not a library).
        monkeypatch.setattr(type(bot.database.turns), "recent", broken)
        shown = await (await fake_discord.invoke(
            guild_id=first.guild.id, user_id=first.member_id, command="history show")).wait_reply(timeout=10)
        assert shown.flags & EPHEMERAL
        assert "Sorry, something went wrong" in shown.content
        assert "disk on fire" not in shown.content
        assert any("disk on fire" in (r.exc_text or "") or r.exc_info for r in caplog.records
                   if "history show" in r.getMessage())
