"""One fake guild to talk in, and the recognisable fake secrets the bot logs in with.

Shared by the tests (``tests/harness.py``) and the benchmarks, which import only ``tests/fakes``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.fakes.discord.model import MANAGE_GUILD, FakeChannel, FakeGuild
from tests.fakes.discord.server import FakeDiscord

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


def build_world(fake: FakeDiscord, name: str = "Test guild", *, guild_id: int | None = None) -> World:
    """``guild_id`` places the guild on a chosen shard (``(id >> 22) % shard_count``); else a fresh id."""
    guild = fake.add_guild(name, id=guild_id)
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
