"""The privacy notice comes before any audio goes anywhere; without it, the bot does not listen."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.e2e.conversation_support import spoken_question
from tests.fakes.discord.model import SEND_MESSAGES, Overwrite
from tests.harness import build_world, running_bot, settings_for

GUARD_S = 20


async def test_join_says_why_and_does_not_listen_when_the_notice_cannot_be_posted(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    world = build_world(fake_discord)
    world.text.overwrites.append(Overwrite.member(fake_discord.bot_user.id, deny=SEND_MESSAGES))
    await fake_discord.set_voice_state(world.guild.id, world.member_id, world.voice.id)
    speaker = fake_voice.add_speaker(world.guild.id, world.voice.id, world.member_id)
    settings = settings_for(fake_discord, tmp_path, mistral_server_url=fake_mistral.url,
                            mistral_api_key=fake_mistral.api_key)
    async with running_bot(fake_discord, settings) as bot:
        reply = await (await fake_discord.invoke(
            guild_id=world.guild.id, user_id=world.member_id, command="join", channel_id=world.text.id,
        )).wait_reply(timeout=GUARD_S)
        assert "privacy notice" in reply.content and "Send Messages" in reply.content, reply.content
        assert "not listening" in reply.content and reply.ephemeral
        assert bot.sessions.get(world.guild.id) is None
        assert bot.engine is not None and bot.engine.runtime(world.guild.id) is None
        # Whatever is said now reaches nobody.
        await speaker.speak(spoken_question(seed=3))
        await asyncio.sleep(0.5)
        assert fake_mistral.requests == [] and fake_mistral.realtime_sessions == []
    assert not [m for m in fake_discord.sent_messages if "Privacy notice" in m.get("content", "")]
