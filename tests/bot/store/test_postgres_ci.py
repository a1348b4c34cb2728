"""The assembled bot on a real PostgreSQL server (started by tests/services.py): slash commands and a
spoken conversation store through it, and two shard-group processes share one database.

The repository tests in this folder already run on PostgreSQL (``database_url[postgresql]``);
these check the same store as the bot uses it, through the fake Discord and fake Mistral. Each
test gets its own empty database (``postgres_url``), so migrations run from scratch every time.
Without PostgreSQL they skip on a developer machine and fail under CI=true.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from bot.store import Database
from bot.store.models import Turn
from tests.bot.test_sharding import guild_on_shard
from tests.e2e.conversation_support import call_in_progress, wait_turns
from tests.fakes.discord import FakeDiscord
from tests.fakes.synth import spoken_question
from tests.harness import build_world, running_bot, settings_for

EPHEMERAL = 64


def turn(guild_id: int, text: str, minutes: int) -> Turn:
    return Turn(id=None, guild_id=guild_id, speaker_id=5, speaker_name="alice", role="user", text=text,
                created_at=dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC) + dt.timedelta(minutes=minutes))


async def test_history_commands_on_postgresql(
    fake_discord: FakeDiscord, fake_discord_env: dict[str, str], postgres_url: str, tmp_path: Path
) -> None:
    world = build_world(fake_discord)
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path, database_url=postgres_url)) as bot:
        assert bot.database.dialect == "postgresql"
        await bot.database.turns.add(turn(world.guild.id, "Où est Lyon ? ✓ unicode survives", 0))
        shown = await (await fake_discord.invoke(
            guild_id=world.guild.id, user_id=world.member_id, command="history show")).wait_reply(timeout=10)
        assert shown.flags & EPHEMERAL and "Où est Lyon ? ✓" in shown.content

        cleared = await (await fake_discord.invoke(
            guild_id=world.guild.id, user_id=world.admin_id, command="admin history clear")).wait_reply(timeout=10)
        assert cleared.flags & EPHEMERAL
        assert await bot.database.turns.recent(world.guild.id, limit=10) == []


async def test_a_spoken_turn_is_stored_in_postgresql(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, postgres_url: str, tmp_path: Path
) -> None:
    fake_mistral.transcribe = lambda _audio: "What is the capital of France?"
    fake_mistral.reply = lambda _messages: "Paris."
    world = build_world(fake_discord)
    settings = settings_for(fake_discord, tmp_path, database_url=postgres_url,
                            mistral_server_url=fake_mistral.url, mistral_api_key=fake_mistral.api_key)
    async with running_bot(fake_discord, settings) as bot, call_in_progress(
        fake_discord, fake_voice, fake_mistral, tmp_path, world=world, bot=bot
    ) as call:
        await call.speaker.speak(spoken_question())
        turns = await wait_turns(bot, world.guild.id, 2)
    assert [(t.role, t.text) for t in turns[-2:]] == [
        ("user", "What is the capital of France?"), ("assistant", "Paris.")]
    # Read back through a separate connection pool, as another process would.
    async with Database.open(postgres_url) as other:
        assert [t.text for t in await other.turns.recent(world.guild.id, limit=10)][-1] == "Paris."


async def test_two_shard_groups_start_together_on_one_fresh_database(
    fake_discord: FakeDiscord, fake_discord_env: dict[str, str], postgres_url: str, tmp_path: Path
) -> None:
    guilds = [guild_on_shard(fake_discord, shard, 2, f"Guild {shard}") for shard in (0, 1)]
    # Both processes migrate the empty database at the same moment (the migrator's advisory lock).
    opened = await asyncio.gather(Database.open(postgres_url), Database.open(postgres_url))
    try:
        assert [await db.schema_version() for db in opened] == [await opened[0].schema_version()] * 2
    finally:
        for db in opened:
            await db.close()

    groups = [settings_for(fake_discord, tmp_path, database_url=postgres_url, shard_count=2, shard_ids=str(s))
              for s in (0, 1)]
    async with running_bot(fake_discord, groups[0]) as first, running_bot(fake_discord, groups[1]) as second:
        # A turn written by one process is history for the other (a guild that moves between
        # shard groups after a re-shard keeps its conversation).
        await first.database.turns.add(turn(guilds[1].id, "written by shard group 0", 0))
        shown = await (await fake_discord.invoke(
            guild_id=guilds[1].id, user_id=fake_discord.owner.id, command="history show")).wait_reply(timeout=10)
        assert "written by shard group 0" in shown.content
        assert [g.id for g in second.guilds] == [guilds[1].id]
