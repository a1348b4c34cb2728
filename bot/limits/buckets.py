"""Token buckets and expiring counters behind one small store interface.

The limiter only speaks ``CounterStore``: the in-process ``MemoryCounterStore`` here serves one
process; ``bot.limits.redis_backend.RedisCounterStore`` serves several shards sharing limits.
Times are wall-clock seconds (``time.time``), not monotonic, because a shared store compares
timestamps written by different processes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class CounterStore(Protocol):
    """What a rate limiter needs from its storage; every call is one atomic step."""

    async def take(
        self, key: str, *, capacity: float, refill_per_second: float, cost: float = 1.0, now: float
    ) -> tuple[bool, float]:
        """Take ``cost`` tokens from the bucket ``key`` (full when new).

        Returns (allowed, retry_after): retry_after is 0.0 when allowed, otherwise the seconds
        until ``cost`` tokens will be there. A refusal takes nothing.
        """
        ...

    async def add(self, key: str, amount: float, *, expire_at: float) -> float:
        """Add ``amount`` to the counter ``key`` (0 when new or expired); returns the new value.

        ``expire_at`` (wall-clock seconds) is when the counter is forgotten.
        """
        ...

    async def get(self, key: str) -> float | None:
        """The counter's value, or None when it does not exist (or expired)."""
        ...


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    full_at: float  # after this the bucket is full again, the same as absent


@dataclass(slots=True)
class _Counter:
    value: float
    expire_at: float


class MemoryCounterStore:
    """``CounterStore`` for a single process. Idle buckets and expired counters are swept
    every ``sweep_every`` operations, so memory stays bounded by the members active recently."""

    def __init__(self, *, clock: Callable[[], float] = time.time, sweep_every: int = 1024) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._counters: dict[str, _Counter] = {}
        self._sweep_every = sweep_every
        self._operations = 0

    async def take(
        self, key: str, *, capacity: float, refill_per_second: float, cost: float = 1.0, now: float
    ) -> tuple[bool, float]:
        self._tick(now)
        bucket = self._buckets.get(key)
        tokens = capacity
        if bucket is not None:
            elapsed = max(0.0, now - bucket.updated)
            tokens = min(capacity, bucket.tokens + elapsed * refill_per_second)
        if tokens >= cost:
            tokens -= cost
            allowed, retry_after = True, 0.0
        else:
            allowed = False
            retry_after = math.inf if refill_per_second <= 0 else (cost - tokens) / refill_per_second
        missing = capacity - tokens
        full_at = now + (missing / refill_per_second if refill_per_second > 0 else math.inf)
        self._buckets[key] = _Bucket(tokens=tokens, updated=now, full_at=full_at)
        return allowed, retry_after

    async def add(self, key: str, amount: float, *, expire_at: float) -> float:
        now = self._clock()
        self._tick(now)
        counter = self._counters.get(key)
        if counter is None or counter.expire_at <= now:
            counter = _Counter(value=0.0, expire_at=expire_at)
            self._counters[key] = counter
        counter.value += amount
        counter.expire_at = expire_at
        return counter.value

    async def get(self, key: str) -> float | None:
        counter = self._counters.get(key)
        if counter is None or counter.expire_at <= self._clock():
            return None
        return counter.value

    def __len__(self) -> int:
        return len(self._buckets) + len(self._counters)

    def _tick(self, now: float) -> None:
        self._operations += 1
        if self._operations % self._sweep_every == 0:
            self.sweep(now)

    def sweep(self, now: float) -> None:
        """Forget full buckets and expired counters: both behave exactly as if absent."""
        self._buckets = {k: b for k, b in self._buckets.items() if b.full_at > now}
        self._counters = {k: c for k, c in self._counters.items() if c.expire_at > now}


@dataclass(frozen=True, slots=True)
class Rate:
    """``per_minute`` actions a minute on average, at most ``burst`` back to back."""

    per_minute: float
    burst: float

    @classmethod
    def per_minute_with_burst(cls, per_minute: float, burst: float | None = None) -> Rate:
        return cls(per_minute=per_minute, burst=max(1.0, burst if burst is not None else per_minute))

    @property
    def refill_per_second(self) -> float:
        return self.per_minute / 60.0


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after: float = 0.0
    # True only for the first refusal of a limiting episode: the one moment to say something.
    first_refusal: bool = False


ALLOWED = Decision(allowed=True)


class RateLimiter:
    """Token buckets per key, and "tell them once" bookkeeping per limiting episode.

    An episode starts with a refusal and lasts until the bucket has a token again; its notice
    marker is a counter that expires exactly then, so it lives in the same (possibly shared)
    store as the bucket and the next episode gets its own notice.

    A bucket belongs to a key *and* a rate. When an admin changes a limit the next hit uses a
    fresh, full bucket at the new rate (and a fresh episode): a raise frees a limited member at
    once, and a cut lets at most the new burst through before the new rate holds. Reusing the old
    bucket instead would keep a raised member waiting at the old rate's refill. The old bucket
    expires on its own once it would have refilled.
    """

    def __init__(self, store: CounterStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    async def hit(self, key: str, rate: Rate, *, cost: float = 1.0) -> Decision:
        now = self._clock()
        key = f"{key}@{rate.per_minute!r}/{rate.burst!r}"
        allowed, retry_after = await self._store.take(
            f"bucket:{key}", capacity=rate.burst, refill_per_second=rate.refill_per_second, cost=cost, now=now
        )
        if allowed:
            return ALLOWED
        expire_at = now + (retry_after if math.isfinite(retry_after) else 3600.0)
        refusals = await self._store.add(f"noticed:{key}", 1.0, expire_at=expire_at)
        return Decision(allowed=False, retry_after=retry_after, first_refusal=refusals <= 1.0)
