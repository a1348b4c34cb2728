"""/settings and /status through the loopback Discord."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.discord import FakeDiscord
from tests.harness import build_world, running_bot, settings_for

EPHEMERAL = 64


@pytest.fixture
def world(fake_discord: FakeDiscord, fake_discord_env: dict[str, str]):
    return build_world(fake_discord)


async def run(fake: FakeDiscord, world, user_id: int, command: str, **options: object):
    return await (await fake.invoke(
        guild_id=world.guild.id, user_id=user_id, command=command, options=options or None,
        channel_id=world.text.id,
    )).wait_reply(timeout=10)


async def test_admin_changes_settings_and_everyone_can_see_them(fake_discord, world, tmp_path: Path) -> None:
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        shown = await run(fake_discord, world, world.member_id, "settings show")
        assert shown.flags & EPHEMERAL
        assert "`auto`" in shown.content and "Voxcord (my display name)" in shown.content

        changed = await run(fake_discord, world, world.admin_id, "admin settings addressing", mode="wake_word")
        assert "`wake_word`" in changed.content
        await run(fake_discord, world, world.admin_id, "admin settings wake-word", word="Jarvis")
        await run(fake_discord, world, world.admin_id, "admin settings persona", text="A calm librarian.")
        await run(fake_discord, world, world.admin_id, "admin settings text-channel", channel=world.text)

        stored = await bot.database.guilds.get(world.guild.id)
        assert (stored.addressing_mode, stored.wake_word, stored.persona, stored.text_channel_id) == (
            "wake_word", "Jarvis", "A calm librarian.", world.text.id)
        shown = await run(fake_discord, world, world.member_id, "settings show")
        assert "Jarvis" in shown.content and "calm librarian" in shown.content

        reset = await run(fake_discord, world, world.admin_id, "admin settings persona")
        assert "reset" in reset.content
        assert (await bot.database.guilds.get(world.guild.id)).persona is None


async def test_members_cannot_change_settings(fake_discord, world, tmp_path: Path) -> None:
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        denied = await run(fake_discord, world, world.member_id, "admin settings addressing", mode="always")
        assert denied.flags & EPHEMERAL and "Manage" in denied.content
        assert (await bot.database.guilds.get(world.guild.id)).addressing_mode == "auto"


async def test_wake_word_is_validated(fake_discord, world, tmp_path: Path) -> None:
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        refused = await run(fake_discord, world, world.admin_id, "admin settings wake-word", word="!!!")
        assert "short word" in refused.content
        assert (await bot.database.guilds.get(world.guild.id)).wake_word is None


async def test_status_when_idle(fake_discord, world, tmp_path: Path) -> None:
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)):
        status = await run(fake_discord, world, world.member_id, "status")
        assert status.flags & EPHEMERAL
        assert "Not in a voice channel" in status.content and "No turns timed yet" in status.content


async def test_language_vocabulary_and_heard_bots(fake_discord, world, tmp_path: Path) -> None:
    dj = fake_discord.snowflakes.next()
    world.guild.add_member(dj, "Groovy", bot=True)
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        refused = await run(fake_discord, world, world.admin_id, "admin settings language", code="French")
        assert "two-letter" in refused.content
        await run(fake_discord, world, world.admin_id, "admin settings language", code="FR")
        await run(fake_discord, world, world.admin_id, "admin settings vocabulary", terms=" Lugdunum,, Fourvière ")
        person = await run(fake_discord, world, world.admin_id, "admin settings hear-bot", bot=world.member_id,
                           heard=True)
        assert "not a bot" in person.content
        await run(fake_discord, world, world.admin_id, "admin settings hear-bot", bot=dj, heard=True)
        stored = await bot.database.guilds.get(world.guild.id)
        assert (stored.language, stored.vocabulary, stored.heard_bots) == ("fr", "Lugdunum, Fourvière", str(dj))
        shown = await run(fake_discord, world, world.member_id, "settings show")
        assert "**Language:** fr" in shown.content and "Fourvière" in shown.content and f"<@{dj}>" in shown.content

        await run(fake_discord, world, world.admin_id, "admin settings language", code="auto")
        await run(fake_discord, world, world.admin_id, "admin settings vocabulary")
        await run(fake_discord, world, world.admin_id, "admin settings hear-bot", bot=dj, heard=False)
        stored = await bot.database.guilds.get(world.guild.id)
        assert (stored.language, stored.vocabulary, stored.heard_bots) == (None, None, None)
