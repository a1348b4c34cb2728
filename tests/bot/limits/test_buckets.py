"""Token buckets and expiring counters in virtual time: the in-process CounterStore and the limiter."""

from __future__ import annotations

import math

import pytest

from bot.limits import CounterStore, MemoryCounterStore, Rate, RateLimiter


class Now:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def now() -> Now:
    return Now()


@pytest.fixture
def store(now: Now) -> MemoryCounterStore:
    return MemoryCounterStore(clock=now)


def test_memory_store_satisfies_the_counter_store_protocol(store: MemoryCounterStore) -> None:
    # The limiter is typed against the Protocol; the Redis backend implements the same three calls.
    def accepts(_store: CounterStore) -> None: ...

    accepts(store)
    for name in ("take", "add", "get"):
        assert callable(getattr(store, name))


async def test_a_new_bucket_is_full_then_refuses_with_the_wait_until_a_token(store, now) -> None:
    results = [await store.take("k", capacity=3, refill_per_second=0.5, now=now.t) for _ in range(4)]
    assert [allowed for allowed, _ in results] == [True, True, True, False]
    assert results[0][1] == 0.0
    assert results[3][1] == pytest.approx(2.0)  # one token at 0.5 / s


async def test_tokens_refill_with_time_up_to_capacity_and_refusals_take_nothing(store, now) -> None:
    for _ in range(2):
        await store.take("k", capacity=2, refill_per_second=1.0, now=now.t)
    assert (await store.take("k", capacity=2, refill_per_second=1.0, now=now.t))[0] is False
    now.t += 0.5
    allowed, retry = await store.take("k", capacity=2, refill_per_second=1.0, now=now.t)
    assert not allowed and retry == pytest.approx(0.5), "the earlier refusal took nothing"
    now.t += 0.5
    assert (await store.take("k", capacity=2, refill_per_second=1.0, now=now.t))[0] is True
    now.t += 1000
    took = [(await store.take("k", capacity=2, refill_per_second=1.0, now=now.t))[0] for _ in range(3)]
    assert took == [True, True, False], "never more than capacity, however long it rested"


async def test_cost_larger_than_one_and_zero_refill(store, now) -> None:
    assert (await store.take("k", capacity=5, refill_per_second=1.0, cost=4, now=now.t))[0]
    allowed, retry = await store.take("k", capacity=5, refill_per_second=1.0, cost=4, now=now.t)
    assert not allowed and retry == pytest.approx(3.0)
    assert (await store.take("z", capacity=1, refill_per_second=0.0, now=now.t))[0]
    allowed, retry = await store.take("z", capacity=1, refill_per_second=0.0, now=now.t)
    assert not allowed and math.isinf(retry)


async def test_keys_are_independent(store, now) -> None:
    await store.take("a", capacity=1, refill_per_second=0.1, now=now.t)
    assert not (await store.take("a", capacity=1, refill_per_second=0.1, now=now.t))[0]
    assert (await store.take("b", capacity=1, refill_per_second=0.1, now=now.t))[0]


async def test_counters_add_and_expire(store, now) -> None:
    assert await store.get("c") is None
    assert await store.add("c", 1.0, expire_at=now.t + 10) == 1.0
    assert await store.add("c", 2.5, expire_at=now.t + 10) == 3.5
    assert await store.get("c") == 3.5
    now.t += 10
    assert await store.get("c") is None
    assert await store.add("c", 1.0, expire_at=now.t + 10) == 1.0, "an expired counter starts again at 0"


async def test_sweep_forgets_full_buckets_and_expired_counters(now) -> None:
    store = MemoryCounterStore(clock=now, sweep_every=10_000)
    for i in range(100):
        await store.take(f"user-{i}", capacity=2, refill_per_second=1.0, now=now.t)
        await store.add(f"n-{i}", 1, expire_at=now.t + 5)
    assert len(store) == 200
    now.t += 5
    store.sweep(now.t)
    assert len(store) == 0
    # Forgetting a full bucket changes nothing: it is full again when next used.
    assert (await store.take("user-1", capacity=2, refill_per_second=1.0, now=now.t))[0]


async def test_limiter_tells_once_per_episode(store, now) -> None:
    limiter = RateLimiter(store, clock=now)
    rate = Rate.per_minute_with_burst(6, burst=2)  # one token every 10 s
    assert (await limiter.hit("u", rate)).allowed
    assert (await limiter.hit("u", rate)).allowed
    refusals = [await limiter.hit("u", rate) for _ in range(5)]
    assert [r.allowed for r in refusals] == [False] * 5
    assert [r.first_refusal for r in refusals] == [True, False, False, False, False]
    assert refusals[0].retry_after == pytest.approx(10.0)

    now.t += 10  # the episode ends when a token is back
    assert (await limiter.hit("u", rate)).allowed
    second = [await limiter.hit("u", rate) for _ in range(3)]
    assert [r.first_refusal for r in second] == [True, False, False], "a new episode, a new notice"


async def test_limiter_episode_markers_are_per_key(store, now) -> None:
    limiter = RateLimiter(store, clock=now)
    rate = Rate.per_minute_with_burst(1, burst=1)
    for key in ("a", "b"):
        assert (await limiter.hit(key, rate)).allowed
        assert (await limiter.hit(key, rate)).first_refusal


async def test_a_changed_rate_gets_its_own_bucket_and_episode(store, now) -> None:
    # An admin's new limit applies to the very next hit: a raise frees a limited member at once
    # (the old bucket would keep them waiting for its slow refill), a cut holds after its burst.
    limiter = RateLimiter(store, clock=now)
    slow, fast = Rate.per_minute_with_burst(1), Rate.per_minute_with_burst(3)
    assert (await limiter.hit("u", slow)).allowed
    assert (await limiter.hit("u", slow)).first_refusal
    assert [(await limiter.hit("u", fast)).allowed for _ in range(4)] == [True, True, True, False]
    assert not (await limiter.hit("u", slow)).allowed, "back to the old rate: its bucket is still empty"
    now.t += 60
    assert (await limiter.hit("u", slow)).allowed


def test_rate_defaults_burst_to_a_minutes_worth() -> None:
    assert Rate.per_minute_with_burst(30).burst == 30
    assert Rate.per_minute_with_burst(0.5).burst == 1.0
    assert Rate.per_minute_with_burst(30).refill_per_second == pytest.approx(0.5)
