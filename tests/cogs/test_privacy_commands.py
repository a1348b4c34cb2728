"""/privacy through the loopback Discord: choices, consent mode, retention, forget-me, export."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from bot.store.models import Turn
from tests.fakes.discord import FakeDiscord
from tests.harness import build_world, running_bot, settings_for

EPHEMERAL = 64


@pytest.fixture
def worlds(fake_discord: FakeDiscord, fake_discord_env: dict[str, str]):
    return build_world(fake_discord, "First"), build_world(fake_discord, "Second")


async def run(fake: FakeDiscord, world, user_id: int, command: str, **options: object):
    return await (await fake.invoke(
        guild_id=world.guild.id, user_id=user_id, command=command, options=options or None,
        channel_id=world.text.id,
    )).wait_reply(timeout=10)


def said(guild_id: int, speaker_id: int | None, text: str, minutes_ago: int, role: str = "user") -> Turn:
    at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes_ago)
    return Turn(id=None, guild_id=guild_id, speaker_id=speaker_id, speaker_name=f"u{speaker_id}", role=role,
                text=text, created_at=at)


async def test_optout_and_optin_are_stored_per_member_per_guild(fake_discord, worlds, tmp_path: Path) -> None:
    first, second = worlds
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        out = await run(fake_discord, first, first.member_id, "privacy optout")
        assert out.flags & EPHEMERAL and "Opted out" in out.content and "decoded" in out.content
        assert await bot.database.privacy.status(first.guild.id, first.member_id) is False
        assert await bot.database.privacy.status(second.guild.id, second.member_id) is None
        assert await bot.database.privacy.status(first.guild.id, first.admin_id) is None

        status = await run(fake_discord, first, first.member_id, "privacy status")
        assert "I don't hear you" in status.content

        back = await run(fake_discord, first, first.member_id, "privacy optin")
        assert back.flags & EPHEMERAL and "I hear you" in back.content
        assert await bot.database.privacy.status(first.guild.id, first.member_id) is True


async def test_consent_mode_needs_manage_server_and_makes_opt_in_the_default(
    fake_discord, worlds, tmp_path: Path
) -> None:
    first, second = worlds
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        denied = await run(fake_discord, first, first.member_id, "admin privacy consent-mode", mode="opt_in")
        assert denied.flags & EPHEMERAL and "Manage" in denied.content
        assert (await bot.database.guilds.get(first.guild.id)).consent_mode == "opt_out"

        changed = await run(fake_discord, first, first.admin_id, "admin privacy consent-mode", mode="opt_in")
        assert "`opt_in`" in changed.content
        assert (await bot.database.guilds.get(first.guild.id)).consent_mode == "opt_in"
        assert (await bot.database.guilds.get(second.guild.id)).consent_mode == "opt_out"

        status = await run(fake_discord, first, first.member_id, "privacy status")
        assert "only lets me hear members who opted in" in status.content
        elsewhere = await run(fake_discord, second, second.member_id, "privacy status")
        assert "I hear you" in elsewhere.content


async def test_retention_needs_manage_server_and_deletes_what_is_older(fake_discord, worlds, tmp_path: Path) -> None:
    first, second = worlds
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        day = 24 * 60
        await bot.database.turns.add_many([
            said(first.guild.id, first.member_id, "ten days ago", 10 * day),
            said(first.guild.id, first.member_id, "yesterday", day),
            said(second.guild.id, second.member_id, "ten days ago elsewhere", 10 * day),
        ])
        denied = await run(fake_discord, first, first.member_id, "admin privacy retention", days=3)
        assert "Manage" in denied.content
        assert await bot.database.turns.count(first.guild.id) == 2

        done = await run(fake_discord, first, first.admin_id, "admin privacy retention", days=3)
        assert "3 days" in done.content and "1 turn older than that deleted" in done.content
        assert [t.text for t in await bot.database.turns.recent(first.guild.id, limit=10)] == ["yesterday"]
        assert await bot.database.turns.count(second.guild.id) == 1


async def test_forget_me_removes_exactly_that_members_turns(fake_discord, worlds, tmp_path: Path) -> None:
    first, second = worlds
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        g = first.guild.id
        await bot.database.turns.add_many([
            said(g, first.member_id, "bob one", 5), said(g, first.admin_id, "alice one", 4),
            said(g, None, "the reply", 3, "assistant"), said(g, first.member_id, "bob two", 2),
            said(second.guild.id, second.member_id, "bob elsewhere", 1),
        ])
        await run(fake_discord, first, first.member_id, "privacy optout")

        reply = await run(fake_discord, first, first.member_id, "privacy forget-me")
        assert reply.flags & EPHEMERAL and "Deleted 2 turns of yours" in reply.content
        assert [t.text for t in await bot.database.turns.recent(g, limit=10)] == ["alice one", "the reply"]
        assert await bot.database.turns.count(second.guild.id) == 1
        assert await bot.database.privacy.status(g, first.member_id) is False  # kept unless asked

        again = await run(fake_discord, first, first.member_id, "privacy forget-me", forget_choice=True)
        assert "Deleted 0" in again.content and "choice is forgotten" in again.content
        assert "now hear you" in again.content  # honest about what the default means
        assert await bot.database.privacy.status(g, first.member_id) is None


async def test_export_sends_exactly_that_members_turns_as_an_ephemeral_file(
    fake_discord, worlds, tmp_path: Path
) -> None:
    first, second = worlds
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        g = first.guild.id
        await bot.database.turns.add_many([
            said(g, first.member_id, "my first", 5), said(g, first.admin_id, "not mine", 4),
            said(g, None, "the reply", 3, "assistant"), said(g, first.member_id, "my second", 2, "context"),
            said(second.guild.id, second.member_id, "other guild", 1),
        ])
        alices = await run(fake_discord, first, first.admin_id, "privacy export")
        assert "Your 1 turn stored" in alices.content
        assert [t["text"] for t in json.loads(alices.files[0].data)["turns"]] == ["not mine"]

        reply = await run(fake_discord, first, first.member_id, "privacy export")
        assert reply.flags & EPHEMERAL and "Your 2 turns stored" in reply.content
        assert len(reply.files) == 1 and reply.files[0].filename.endswith(".json")
        document = json.loads(reply.files[0].data)
        assert document["user_id"] == str(first.member_id)
        assert [t["text"] for t in document["turns"]] == ["my first", "my second"]

        await bot.database.turns.clear(g)
        nothing = await run(fake_discord, first, first.member_id, "privacy export")
        assert nothing.flags & EPHEMERAL and not nothing.files and "no stored text" in nothing.content
