"""RedisCounterStore against a real redis-server (tests/services.py), checked against the in-process store.

The shared cases run on both ``MemoryCounterStore`` and ``RedisCounterStore``: a limiter must
behave the same whether it serves one process or many. Time is passed in (``now``), so nothing
sleeps; only counter expiry uses the Redis server's clock, checked through its TTL.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from bot.limits.buckets import CounterStore, MemoryCounterStore
from bot.limits.redis_backend import RedisCounterStore, RedisUnavailableError

T0 = 1_800_000_000.0  # a fixed wall-clock instant; buckets only compare the times they are given


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[CounterStore]:
    if request.param == "memory":
        yield MemoryCounterStore()
        return
    async with RedisCounterStore.from_url(request.getfixturevalue("redis_url")) as shared:
        yield shared


async def test_new_bucket_is_full_then_refuses_with_time_to_next_token(store: CounterStore) -> None:
    results = [await store.take("u:1", capacity=3, refill_per_second=0.5, now=T0) for _ in range(4)]
    assert [allowed for allowed, _ in results] == [True, True, True, False]
    assert [retry for _, retry in results[:3]] == [0.0, 0.0, 0.0]
    assert results[3][1] == pytest.approx(2.0)  # one token at 0.5 per second


async def test_tokens_come_back_with_time(store: CounterStore) -> None:
    for _ in range(2):
        await store.take("u:1", capacity=2, refill_per_second=1.0, now=T0)
    assert (await store.take("u:1", capacity=2, refill_per_second=1.0, now=T0 + 0.25))[0] is False
    assert await store.take("u:1", capacity=2, refill_per_second=1.0, now=T0 + 1.0) == (True, 0.0)
    # Never above capacity, however long it was idle.
    later = T0 + 3600
    assert [(await store.take("u:1", capacity=2, refill_per_second=1.0, now=later))[0] for _ in range(3)] == [
        True, True, False]


async def test_a_refusal_takes_nothing_and_fractions_are_exact(store: CounterStore) -> None:
    assert await store.take("g:1", capacity=1.5, refill_per_second=0.1, cost=1.0, now=T0) == (True, 0.0)
    allowed, retry = await store.take("g:1", capacity=1.5, refill_per_second=0.1, cost=1.0, now=T0)
    assert not allowed and retry == pytest.approx(5.0)  # 0.5 missing at 0.1/s
    assert await store.take("g:1", capacity=1.5, refill_per_second=0.1, cost=0.5, now=T0) == (True, 0.0)


async def test_a_bucket_that_never_refills_says_so(store: CounterStore) -> None:
    assert (await store.take("k", capacity=1, refill_per_second=0.0, now=T0))[0]
    assert await store.take("k", capacity=1, refill_per_second=0.0, now=T0 + 10) == (False, math.inf)


async def test_keys_are_independent(store: CounterStore) -> None:
    assert (await store.take("a", capacity=1, refill_per_second=1, now=T0))[0]
    assert (await store.take("b", capacity=1, refill_per_second=1, now=T0))[0]
    assert not (await store.take("a", capacity=1, refill_per_second=1, now=T0))[0]


async def test_counters_add_up_and_are_absent_until_first_add(store: CounterStore) -> None:
    month_end = time.time() + 30 * 86400
    assert await store.get("spend:g1") is None
    assert await store.add("spend:g1", 0.1, expire_at=month_end) == pytest.approx(0.1)
    assert await store.add("spend:g1", 0.2, expire_at=month_end) == pytest.approx(0.3)
    assert await store.get("spend:g1") == pytest.approx(0.3)
    assert await store.get("spend:g2") is None


async def test_an_expired_counter_is_gone_and_starts_again_from_zero(store: CounterStore) -> None:
    await store.add("spend:old", 5.0, expire_at=time.time() - 1)
    assert await store.get("spend:old") is None
    assert await store.add("spend:old", 1.0, expire_at=time.time() + 60) == pytest.approx(1.0)


# ---------------------------------------------------------------- Redis only


async def test_two_processes_share_one_bucket(redis_url: str) -> None:
    """Two stores with their own connection pools, as two shard processes have: one bucket."""
    async with RedisCounterStore.from_url(redis_url) as first, RedisCounterStore.from_url(redis_url) as second:
        assert (await first.take("user:42", capacity=2, refill_per_second=1 / 60, now=T0))[0]
        assert (await second.take("user:42", capacity=2, refill_per_second=1 / 60, now=T0 + 1))[0]
        allowed, retry = await first.take("user:42", capacity=2, refill_per_second=1 / 60, now=T0 + 2)
        assert not allowed and retry == pytest.approx(60 - 2, abs=0.01)

        # Racing: 40 takes at once from both processes; exactly the capacity gets through.
        attempts = [
            store.take("guild:7", capacity=10, refill_per_second=0.001, now=T0)
            for _ in range(20) for store in (first, second)
        ]
        results = await asyncio.gather(*attempts)
        assert sum(allowed for allowed, _ in results) == 10

        await first.add("spend:guild:7", 0.25, expire_at=time.time() + 60)
        await second.add("spend:guild:7", 0.5, expire_at=time.time() + 60)
        assert await first.get("spend:guild:7") == pytest.approx(0.75)


async def test_keys_expire_so_idle_members_cost_no_memory(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        store = RedisCounterStore(client, prefix="test:")
        await store.take("idle", capacity=4, refill_per_second=2.0, cost=3, now=T0)
        # 3 tokens missing at 2/s: full (the same as absent) 1.5 s later.
        assert 1400 <= await client.pttl("test:idle") <= 1500
        await store.add("month", 1.0, expire_at=time.time() + 100)
        assert 98_000 <= await client.pttl("test:month") <= 100_001  # ms rounded up
        assert sorted(await client.keys("*")) == [b"test:idle", b"test:month"]  # the prefix namespaces keys
        await store.close()  # a client handed in belongs to the caller: still usable
        assert await client.ping()
    finally:
        await client.aclose()


async def test_unreachable_redis_is_one_readable_error() -> None:
    async with RedisCounterStore.from_url("redis://:hunter2@127.0.0.1:1/0") as store:
        with pytest.raises(RedisUnavailableError, match=r"127\.0\.0\.1:1") as raised:
            await store.ping()
    assert "hunter2" not in str(raised.value)


def test_the_entry_point_loads_redis_py_only_for_a_store() -> None:
    # ~7 MB of RSS that a one-process bot (no REDIS_URL) never uses. A fresh interpreter: this
    # one imported redis-py at the top of this file.
    code = "import sys, bot.__main__; print(sorted(m for m in sys.modules if m.split('.')[0] == 'redis'))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"
