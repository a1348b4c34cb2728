"""bench/shards.py: the guilds of a multi-process benchmark spread evenly over the shard groups,
with ids Discord's formula routes where the plan says, and each process gets its own shard."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.shards import process_env, shard_for_guild, shared_services, spread_guild_ids
from bot.config import Settings
from bot.sharding import shard_of
from tests.fakes.discord.model import Snowflakes


@pytest.mark.parametrize("processes", [1, 2, 3])
def test_guilds_spread_evenly_over_the_shards(processes: int) -> None:
    # Snowflakes made in one quick loop share their millisecond, so unspread they all land on
    # one shard: 50 guilds would all be served by the same process.
    ids = spread_guild_ids(Snowflakes().next, 50, processes)
    per_shard = Counter(shard_of(guild_id, processes) for guild_id in ids)
    assert sorted(per_shard) == list(range(processes))
    assert max(per_shard.values()) - min(per_shard.values()) <= 1
    assert [shard_of(g, processes) for g in ids] == [shard_for_guild(i, processes) for i in range(50)]
    assert len(set(ids)) == 50


def test_one_process_keeps_its_guilds_ids_as_made() -> None:
    made = iter([5 << 22 | 1, 6 << 22 | 2, 6 << 22 | 3])
    assert spread_guild_ids(lambda: next(made), 3, 1) == [5 << 22 | 1, 6 << 22 | 2, 6 << 22 | 3]


def test_each_process_runs_its_own_shard_of_all() -> None:
    assert process_env(0, 1) == {}  # one process: as today, the database's sole writer
    envs = [process_env(i, 3) for i in range(3)]
    plans = [Settings(_env_file=None, discord_token="t" * 8, mistral_api_key="k" * 8,
                      shard_count=env["SHARD_COUNT"], shard_ids=env["SHARD_IDS"]) for env in envs]
    assert [p.shard_ids for p in plans] == [(0,), (1,), (2,)]
    assert {p.shard_count for p in plans} == {3}
    assert not any(p.sole_process for p in plans)


def test_only_one_process_on_sqlite_runs_without_shared_services() -> None:
    with shared_services(1) as env:
        assert env == {}  # the default deployment: sole writer, counters in memory
    with pytest.raises(ValueError, match="store"), shared_services(2, "mysql"):
        pass
