"""The bot leaves a channel nobody is in any more, and joins its auto-join channel when a member
enters it: through the loopback Discord and voice server, with a short IDLE_LEAVE_SECONDS."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.e2e.conversation_support import call_in_progress
from tests.fakes.discord import FakeDiscord
from tests.harness import build_world, running_bot, settings_for

IDLE_S = 0.5
GUARD_S = 20


async def until(predicate, what: str, timeout: float = GUARD_S) -> None:  # noqa: ANN001, ASYNC109
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def bot_left(fake: FakeDiscord, guild_id: int) -> bool:
    updates = [u for u in fake.voice_state_updates if str(u.get("guild_id")) == str(guild_id)]
    return bool(updates) and updates[-1].get("channel_id") is None


async def test_the_bot_leaves_once_the_last_human_has_gone_for_idle_leave_seconds(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    world = build_world(fake_discord)
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path, world=world,
                                settings={"idle_leave_seconds": IDLE_S}) as call:
        guild_id = world.guild.id
        # Out and back in before the idle time is up: the bot stays.
        await fake_discord.set_voice_state(guild_id, world.member_id, None)
        await asyncio.sleep(IDLE_S / 3)
        await fake_discord.set_voice_state(guild_id, world.member_id, world.voice.id)
        await asyncio.sleep(IDLE_S * 2)
        assert call.bot.sessions.get(guild_id) is not None, "a member came back in time"
        # Gone for good: the bot leaves and releases the guild's listening and answering.
        await fake_discord.set_voice_state(guild_id, world.member_id, None)
        left_at = asyncio.get_running_loop().time()
        await until(lambda: call.bot.sessions.get(guild_id) is None, "the session released")
        waited = asyncio.get_running_loop().time() - left_at
        assert waited >= IDLE_S * 0.9, "not before the idle time is up"
        assert call.bot.engine is not None and call.bot.engine.runtime(guild_id) is None
        await until(lambda: bot_left(fake_discord, guild_id), "the bot's voice state cleared")


async def test_autojoin_joins_when_a_member_enters_and_posts_the_notice_first(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    world = build_world(fake_discord)
    settings = settings_for(fake_discord, tmp_path, mistral_server_url=fake_mistral.url,
                            mistral_api_key=fake_mistral.api_key, idle_leave_seconds=IDLE_S)
    async with running_bot(fake_discord, settings) as bot:
        reply = await (await fake_discord.invoke(
            guild_id=world.guild.id, user_id=world.admin_id, command="admin settings autojoin",
            options={"channel": world.voice}, channel_id=world.text.id)).wait_reply(timeout=GUARD_S)
        assert world.voice.name in reply.content or f"<#{world.voice.id}>" in reply.content
        # Someone entering another channel changes nothing.
        await fake_discord.set_voice_state(world.guild.id, world.member_id, world.other_voice.id)
        await asyncio.sleep(0.3)
        assert bot.sessions.get(world.guild.id) is None
        fake_voice.add_speaker(world.guild.id, world.voice.id, world.member_id)
        await fake_discord.set_voice_state(world.guild.id, world.member_id, world.voice.id)
        await until(lambda: bot.sessions.get(world.guild.id) is not None, "joined by itself")
        await fake_voice.wait_connected(world.guild.id)
        # No text channel is configured and nobody used /join: the voice channel's own chat.
        def notices() -> list[dict]:
            return [m for m in fake_discord.sent_messages if "Privacy notice" in m.get("content", "")]

        await until(lambda: bot.engine is not None and bot.engine.runtime(world.guild.id) is not None, "listening")
        notices = notices()
        assert [m["channel_id"] for m in notices] == [str(world.voice.id)]
        session = bot.sessions.get(world.guild.id)
        assert session is not None and session.channel_id == world.voice.id
        # And the member leaving takes it out again.
        await fake_discord.set_voice_state(world.guild.id, world.member_id, None)
        await until(lambda: bot.sessions.get(world.guild.id) is None, "left when alone")
