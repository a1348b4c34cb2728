"""/settings captions through the loopback Discord: who may, where, and what is stored."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.discord import FakeDiscord, Overwrite
from tests.fakes.discord.model import SEND_MESSAGES
from tests.harness import World, build_world, running_bot, settings_for

EPHEMERAL = 64


async def run(fake: FakeDiscord, world: World, user_id: int, command: str, *, channel_id: int | None = None,
              **options: object):
    return await (await fake.invoke(
        guild_id=world.guild.id, user_id=user_id, command=command, options=options or None,
        channel_id=channel_id or world.text.id,
    )).wait_reply(timeout=10)


async def test_captions_go_where_the_admin_says_default_here_and_only_admins_decide(
    fake_discord: FakeDiscord, fake_discord_env: dict[str, str], tmp_path: Path
) -> None:
    world = build_world(fake_discord)
    locked = world.guild.add_text_channel(
        "announcements", overwrites=(Overwrite.member(fake_discord.bot_user.id, deny=SEND_MESSAGES),))
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        denied = await run(fake_discord, world, world.member_id, "admin settings captions", mode="on")
        assert denied.flags & EPHEMERAL and "Manage" in denied.content
        assert (await bot.database.guilds.get(world.guild.id)).captions_channel_id is None

        refused = await run(fake_discord, world, world.admin_id, "admin settings captions", mode="on", channel=locked)
        assert "missing the Send Messages permission" in refused.content and f"<#{locked.id}>" in refused.content
        assert (await bot.database.guilds.get(world.guild.id)).captions_channel_id is None

        here = await run(fake_discord, world, world.admin_id, "admin settings captions", mode="on")
        assert here.flags & EPHEMERAL and f"<#{world.text.id}>" in here.content
        assert (await bot.database.guilds.get(world.guild.id)).captions_channel_id == world.text.id

        # A voice channel's own text chat is a fine place too.
        voice_chat = await run(fake_discord, world, world.admin_id, "admin settings captions", mode="on",
                               channel=world.voice)
        assert f"<#{world.voice.id}>" in voice_chat.content
        assert (await bot.database.guilds.get(world.guild.id)).captions_channel_id == world.voice.id
        shown = await run(fake_discord, world, world.member_id, "settings show")
        assert f"**Captions:** in <#{world.voice.id}>" in shown.content

        off = await run(fake_discord, world, world.admin_id, "admin settings captions", mode="off")
        assert off.content == "Captions are off."
        assert (await bot.database.guilds.get(world.guild.id)).captions_channel_id is None
        assert "**Captions:** off" in (await run(fake_discord, world, world.member_id, "settings show")).content
