"""Shard groups through the fake Discord: each process identifies with its own shards and gets only
their guilds (the fake routes guild ``g`` to shard ``(g >> 22) % shard_count``, as Discord does)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.config import Settings
from bot.sharding import ShardPlan, parse_shard_ids, shard_of
from tests.fakes import tls
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.model import FakeGuild
from tests.harness import running_bot, settings_for

EPHEMERAL = 64


def guild_on_shard(fake: FakeDiscord, shard: int, shard_count: int, name: str) -> FakeGuild:
    """A guild whose id Discord would route to ``shard`` (fresh ids land on shards at random)."""
    guild_id = fake.snowflakes.next()
    while shard_of(guild_id, shard_count) != shard:
        guild_id += 1 << 22  # the next millisecond's id: the shard moves on by one
    guild = fake.add_guild(name, id=guild_id)
    guild.add_text_channel("general")
    return guild


async def history(fake: FakeDiscord, guild: FakeGuild) -> str:
    record = await fake.invoke(guild_id=guild.id, user_id=fake.owner.id, command="history show")
    return (await record.wait_reply(timeout=10)).content


# ---------------------------------------------------------------- plan and settings


@pytest.mark.parametrize(("text", "ids"), [("0", (0,)), ("3,1", (1, 3)), ("0-2, 5", (0, 1, 2, 5)), ("1,1", (1,))])
def test_shard_ids_are_written_as_lists_and_ranges(text: str, ids: tuple[int, ...]) -> None:
    assert parse_shard_ids(text) == ids


@pytest.mark.parametrize("text", ["x", "3-1", "-1", ",", "0-99999999"])
def test_bad_shard_ids_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="shard"):
        parse_shard_ids(text)


def test_discords_routing_formula() -> None:
    # Developer docs, Gateway > Sharding: shard_id = (guild_id >> 22) % num_shards.
    assert shard_of(197038439483310086, 2) == (197038439483310086 >> 22) % 2
    assert {shard_of(n << 22, 4) for n in range(8)} == {0, 1, 2, 3}


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, discord_token="t" * 8, mistral_api_key="k" * 8, **values)


def test_plan_from_settings_becomes_autoshardedbot_options() -> None:
    assert ShardPlan.from_settings(settings()).client_options() == {"shard_count": None, "shard_ids": None}
    group = ShardPlan.from_settings(settings(shard_count=4, shard_ids="2-3"))
    assert group.client_options() == {"shard_count": 4, "shard_ids": [2, 3]}
    assert group.describe() == "shard(s) 2, 3 of 4"
    assert ShardPlan.from_settings(settings(shard_count=3)).client_options() == {"shard_count": 3, "shard_ids": None}


@pytest.mark.parametrize(("values", "variable"), [
    ({"shard_ids": "0"}, "SHARD_IDS needs SHARD_COUNT"),
    ({"shard_count": 2, "shard_ids": "0,2"}, "SHARD_IDS must be between 0 and SHARD_COUNT - 1"),
    ({"shard_count": 0}, "SHARD_COUNT"),
    ({"redis_url": "localhost:6379"}, "REDIS_URL must be a redis://"),
])
def test_inconsistent_sharding_settings_are_named(values: dict[str, object], variable: str) -> None:
    from bot.config import describe_settings_error  # noqa: PLC0415

    with pytest.raises(ValidationError) as raised:
        settings(**values)
    assert variable in describe_settings_error(raised.value)


def test_sharding_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHARD_COUNT", "4")
    monkeypatch.setenv("SHARD_IDS", "0,1")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/2")
    loaded = settings()
    assert (loaded.shard_count, loaded.shard_ids, loaded.redis_url) == (4, (0, 1), "redis://cache:6379/2")


# ---------------------------------------------------------------- through the fake Discord


async def test_a_shard_group_identifies_with_its_shard_and_sees_only_its_guilds(
    fake_discord: FakeDiscord, fake_discord_env: dict[str, str], tmp_path: Path
) -> None:
    mine = guild_on_shard(fake_discord, 0, 2, "On shard 0")
    other = guild_on_shard(fake_discord, 1, 2, "On shard 1")
    config = settings_for(fake_discord, tmp_path, shard_count=2, shard_ids="0")
    async with running_bot(fake_discord, config) as bot:
        assert [identify["shard"] for identify in fake_discord.gateway.identifies] == [[0, 2]]
        assert [guild.id for guild in bot.guilds] == [mine.id]
        assert bot.shard_count == 2 and bot.shard_ids == [0]
        # The count was given: discord.py did not ask /gateway/bot for one.
        assert not [r for r in fake_discord.rest.requests if r.path.endswith("/gateway/bot")]

        assert await history(fake_discord, mine) == "No conversation yet."
        # An interaction in the other shard's guild goes to that shard's process, never to this one.
        assert await fake_discord.dispatch("GUILD_UPDATE", {"id": str(other.id)}, guild_id=other.id) == 0


async def test_unsharded_runs_discords_recommended_count_on_the_configured_gateway(
    tls_certificates: tls.TestCertificates, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async with FakeDiscord(tls_certificates, recommended_shards=2) as fake:
        for name, value in fake.settings_env().items():
            monkeypatch.setenv(name, value)
        first = guild_on_shard(fake, 0, 2, "First")
        second = guild_on_shard(fake, 1, 2, "Second")
        async with running_bot(fake, settings_for(fake, tmp_path)) as bot:
            assert sorted(identify["shard"] for identify in fake.gateway.identifies) == [[0, 2], [1, 2]]
            assert {guild.id for guild in bot.guilds} == {first.id, second.id}
            assert len(fake.gateway.connections) == 2
            assert all(c.session is not None for c in fake.gateway.connections)
            assert await history(fake, first) == "No conversation yet."
            assert await history(fake, second) == "No conversation yet."


async def test_two_shard_groups_serve_one_bot_between_them(
    fake_discord: FakeDiscord, fake_discord_env: dict[str, str], tmp_path: Path
) -> None:
    guilds = [guild_on_shard(fake_discord, shard, 2, f"Guild {shard}") for shard in (0, 1)]
    database = f"sqlite:///{tmp_path / 'shared.db'}"  # one store for both (PostgreSQL: test_postgres_ci)
    group_0 = settings_for(fake_discord, tmp_path, shard_count=2, shard_ids="0", database_url=database)
    group_1 = settings_for(fake_discord, tmp_path, shard_count=2, shard_ids="1", database_url=database)
    async with running_bot(fake_discord, group_0) as first, running_bot(fake_discord, group_1) as second:
        assert sorted(i["shard"] for i in fake_discord.gateway.identifies) == [[0, 2], [1, 2]]
        assert [g.id for g in first.guilds] == [guilds[0].id]
        assert [g.id for g in second.guilds] == [guilds[1].id]
        for guild in guilds:
            record = await fake_discord.invoke(guild_id=guild.id, user_id=fake_discord.owner.id,
                                               command="history show")
            reply = await record.wait_reply(timeout=10)
            assert reply.flags & EPHEMERAL and reply.content == "No conversation yet."
            # Acknowledged once (a deferral, then its follow-up): by the one process that owns the guild.
            assert [a.kind for a in record.answers if a.kind == "callback"] == ["callback"]
