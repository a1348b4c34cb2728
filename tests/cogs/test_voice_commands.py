"""/join and /leave through the loopback Discord and voice server (real DAVE handshake)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from bot.voice.client import VoxcordVoiceClient
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.model import CONNECT, SPEAK, Overwrite
from tests.fakes.voice import FakeVoiceServer
from tests.harness import build_world, running_bot, settings_for

EPHEMERAL = 64


@pytest.fixture
def world(fake_discord: FakeDiscord, fake_voice: FakeVoiceServer, fake_discord_env: dict[str, str]):
    return build_world(fake_discord)


async def join(fake: FakeDiscord, world, user_id: int):
    return await (await fake.invoke(
        guild_id=world.guild.id, user_id=user_id, command="join", channel_id=world.text.id,
    )).wait_reply(timeout=20)


async def test_join_connects_with_dave_and_leave_releases_everything(
    fake_discord, fake_voice, world, tmp_path: Path
) -> None:
    await fake_discord.set_voice_state(world.guild.id, world.member_id, world.voice.id)
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        reply = await join(fake_discord, world, world.member_id)
        assert "Joined" in reply.content and str(world.voice.id) in reply.content

        await fake_voice.wait_connected(world.guild.id)
        await fake_voice.wait_dave_settled(world.guild.id)
        session = bot.sessions.get(world.guild.id)
        assert session is not None and session.channel_id == world.voice.id
        assert isinstance(session.voice_client, VoxcordVoiceClient)
        assert session.voice_client._connection.dave_protocol_version == 1

        left = await (await fake_discord.invoke(
            guild_id=world.guild.id, user_id=world.member_id, command="leave")).wait_reply(timeout=10)
        assert "Left" in left.content
        assert bot.sessions.get(world.guild.id) is None
        assert fake_discord.voice_state_updates[-1]["channel_id"] is None
        assert not session.voice_client.is_connected()


async def test_join_when_caller_is_not_in_voice(fake_discord, world, tmp_path: Path) -> None:
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        reply = await join(fake_discord, world, world.member_id)
        assert reply.flags & EPHEMERAL
        assert "Join a voice channel first" in reply.content
        assert bot.sessions.get(world.guild.id) is None
        assert not fake_discord.voice_state_updates


@pytest.mark.parametrize(("deny", "named"), [(SPEAK, "Speak"), (CONNECT, "Connect")])
async def test_join_without_voice_permissions_says_which(
    fake_discord, world, tmp_path: Path, deny: int, named: str
) -> None:
    world.voice.overwrites.append(Overwrite.member(fake_discord.bot_user.id, deny=deny))
    await fake_discord.set_voice_state(world.guild.id, world.member_id, world.voice.id)
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        reply = await join(fake_discord, world, world.member_id)
        assert reply.flags & EPHEMERAL
        assert named in reply.content and "missing" in reply.content
        assert bot.sessions.get(world.guild.id) is None


async def test_busy_in_another_channel_offers_to_move(fake_discord, fake_voice, world, tmp_path: Path) -> None:
    await fake_discord.set_voice_state(world.guild.id, world.member_id, world.voice.id)
    await fake_discord.set_voice_state(world.guild.id, world.admin_id, world.other_voice.id)
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        await join(fake_discord, world, world.member_id)
        await fake_voice.wait_connected(world.guild.id)

        record = await fake_discord.invoke(
            guild_id=world.guild.id, user_id=world.admin_id, command="join", channel_id=world.text.id)
        offer = await record.wait_reply(timeout=20)
        assert offer.flags & EPHEMERAL and "Move me here?" in offer.content
        buttons = [c for row in offer.components for c in row["components"]]
        assert [b["label"] for b in buttons] == ["Move here"]
        assert bot.sessions.get(world.guild.id).channel_id == world.voice.id

        clicked = await fake_discord.click(offer.message_id, buttons[0]["custom_id"], user_id=world.admin_id)
        moved = await clicked.wait_reply(timeout=20)
        assert "Moved to" in moved.content
        assert bot.sessions.get(world.guild.id).channel_id == world.other_voice.id
        assert fake_discord.voice_state_updates[-1]["channel_id"] == world.other_voice.id


async def test_leave_when_not_connected(fake_discord, world, tmp_path: Path) -> None:
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)):
        reply = await (await fake_discord.invoke(
            guild_id=world.guild.id, user_id=world.member_id, command="leave")).wait_reply(timeout=10)
        assert reply.flags & EPHEMERAL
        assert "not in a voice channel" in reply.content


async def test_a_bot_holding_a_hundred_discord_connections_still_joins(
    fake_discord, fake_voice, world, tmp_path: Path
) -> None:
    """Every voice call holds one connection of the bot's Discord connector for as long as it
    lasts (its voice websocket). aiohttp's default cap is 100 connections, so a bot in ~100 calls
    answered nothing more: the next /join's interaction response waited for a free connection
    (seen at 100 guilds in bench.scaling: /join unanswered for 60 s). discord.py's own connector
    has no cap; ours must not have one either."""
    await fake_discord.set_voice_state(world.guild.id, world.member_id, world.voice.id)
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        gateway = fake_discord.settings_env()["DISCORD_GATEWAY_URL"]
        async with aiohttp.ClientSession(connector=bot.http.connector, connector_owner=False) as http:
            # 100 open websockets on the bot's connector, as 100 calls' voice websockets would be.
            async with asyncio.timeout(20):  # capped at 100, the last of these never connects
                held = await asyncio.gather(*(http.ws_connect(gateway) for _ in range(100)))
            try:
                reply = await join(fake_discord, world, world.member_id)
                assert "Joined" in reply.content
            finally:
                await asyncio.gather(*(ws.close() for ws in held))
