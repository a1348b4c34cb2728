"""The real Voxcord bot, assembled exactly as ``python -m bot`` does, logged in to the fakes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from bot.__main__ import assemble
from bot.app import VoxcordBot
from bot.config import Settings
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.fixtures import running_client
from tests.fakes.discord.model import ALL_PERMISSIONS, MANAGE_GUILD, FakeChannel, FakeGuild

# Recognisable fake secrets: the secret-leak checks search every log line for them.
TEST_DISCORD_TOKEN = "test-discord-token-6f1c0a9e"
TEST_MISTRAL_KEY = "test-mistral-key-93be27d4"


@dataclass
class World:
    """One guild with an admin (Manage Server), a plain member, a text and two voice channels."""

    guild: FakeGuild
    admin_id: int
    member_id: int
    text: FakeChannel
    voice: FakeChannel
    other_voice: FakeChannel


def build_world(fake: FakeDiscord, name: str = "Test guild") -> World:
    guild = fake.add_guild(name)
    moderators = guild.add_role("moderators", permissions=MANAGE_GUILD)
    admin = fake.snowflakes.next()
    member = fake.snowflakes.next()
    guild.add_member(admin, "alice", roles=(moderators.id,))
    guild.add_member(member, "bob")
    return World(
        guild=guild, admin_id=admin, member_id=member,
        text=guild.add_text_channel("general"),
        voice=guild.add_voice_channel("Lounge"),
        other_voice=guild.add_voice_channel("Quiet room"),
    )


def settings_for(fake: FakeDiscord, data_dir: Path, **overrides: object) -> Settings:
    env = fake.settings_env()
    values: dict[str, object] = {
        "discord_token": TEST_DISCORD_TOKEN,
        "mistral_api_key": TEST_MISTRAL_KEY,
        "database_url": f"sqlite:///{data_dir / 'voxcord.db'}",
        "discord_api_base_url": env["DISCORD_API_BASE_URL"],
        "discord_gateway_url": env["DISCORD_GATEWAY_URL"],
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@contextlib.asynccontextmanager
async def running_bot(fake: FakeDiscord, settings: Settings) -> AsyncIterator[VoxcordBot]:
    """Needs SSL_CERT_FILE pointing at the fake's CA (the ``fake_discord_env`` fixture sets it)."""
    async with assemble(settings, guild_ready_timeout=0.2) as bot, running_client(
        fake, bot, token=settings.discord_token.get_secret_value()
    ):
        yield bot


__all__ = ["ALL_PERMISSIONS", "TEST_DISCORD_TOKEN", "TEST_MISTRAL_KEY", "World", "build_world",
           "running_bot", "settings_for"]
