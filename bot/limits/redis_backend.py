"""``CounterStore`` on Redis: token buckets and spend counters shared by every bot process.

With ``REDIS_URL`` set, each shard-group process points its rate limiter and budgets at one
Redis, so a member who hits the limit through one process is limited in all of them and a
guild's monthly spend adds up across shards.

Every operation is one Lua script, so read-modify-write is atomic on the server: two processes
taking from one bucket at the same moment cannot both take the last token (Redis runs scripts
one at a time; https://redis.io/docs/latest/develop/interact/programmability/eval-intro/).
Semantics match ``MemoryCounterStore`` exactly; the shared tests run against both.

redis-py is imported when a store is built, not with this module: the entry point imports this
module whether or not ``REDIS_URL`` is set, and redis-py added ~7 MB to every one-process bot's
RSS (measured at start, ``python -m bench.memory``). A store is built at start-up, so the import
never lands on a turn.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final, Self

if TYPE_CHECKING:
    import redis.asyncio as redis

# Bucket state is a hash {tokens, ts}. An absent bucket is full; a bucket expires once it would
# have refilled completely, so idle members cost no memory (the same as MemoryCounterStore's
# sweep). A ``now`` older than the stored ts (clocks of two hosts a little apart) refills
# nothing rather than going backwards. Lua numbers reaching Redis as replies are truncated to
# integers, so fractional values go back as strings formatted with full double precision.
_TAKE: Final = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
if now > ts then
  tokens = math.min(capacity, tokens + (now - ts) * rate)
  ts = now
end
local allowed = 0
local retry = '0'
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
elseif rate > 0 then
  retry = string.format('%.17g', (cost - tokens) / rate)
else
  retry = 'inf'
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', string.format('%.17g', ts))
if rate > 0 then
  redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((capacity - tokens) / rate * 1000)))
else
  redis.call('PERSIST', KEYS[1])
end
return {allowed, retry}
"""

# INCRBYFLOAT treats an expired key as absent (0), like MemoryCounterStore.add; PEXPIREAT in
# the same script means no other client can see the counter without its expiry.
_ADD: Final = """
local value = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return value
"""

DEFAULT_PREFIX: Final = "voxcord:"


class RedisUnavailableError(RuntimeError):
    """Redis could not be reached; the message names the server without its password."""


class RedisCounterStore:
    """``bot.limits.CounterStore`` over one Redis (``redis.asyncio``).

    Build it in ``__main__`` with ``RedisCounterStore.from_url(settings.redis_url)`` and close it
    on the way out. Times are wall-clock seconds; counters expire on the Redis server's clock,
    so keep the hosts NTP-synchronised (a second of skew only shifts an expiry by a second).
    """

    def __init__(self, client: redis.Redis, *, prefix: str = DEFAULT_PREFIX, owns_client: bool = False) -> None:
        self._client = client
        self._prefix = prefix
        self._owns_client = owns_client
        self._take = client.register_script(_TAKE)
        self._add = client.register_script(_ADD)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = DEFAULT_PREFIX) -> Self:
        """A store with its own connection pool (closed by ``close``). Connects lazily."""
        import redis.asyncio as redis  # noqa: PLC0415 - only with REDIS_URL (module docstring)

        return cls(redis.Redis.from_url(url), prefix=prefix, owns_client=True)

    async def ping(self) -> None:
        """Fail early, at start-up, with one readable line when Redis is not there."""
        from redis.exceptions import RedisError  # noqa: PLC0415 - a client exists, so redis-py is loaded

        try:
            await self._client.ping()
        except (RedisError, OSError) as error:
            where: dict[str, object] = self._client.connection_pool.connection_kwargs
            server = where.get("path") or f"{where.get('host')}:{where.get('port')}"
            raise RedisUnavailableError(f"cannot reach Redis at {server}: {error}") from error

    async def take(
        self, key: str, *, capacity: float, refill_per_second: float, cost: float = 1.0, now: float
    ) -> tuple[bool, float]:
        allowed, retry = await self._take(
            keys=[self._prefix + key], args=[repr(capacity), repr(refill_per_second), repr(cost), repr(now)]
        )
        retry_after = float(retry)
        return bool(allowed), (math.inf if math.isinf(retry_after) else retry_after)

    async def add(self, key: str, amount: float, *, expire_at: float) -> float:
        value = await self._add(keys=[self._prefix + key], args=[repr(amount), math.ceil(expire_at * 1000)])
        return float(value)

    async def get(self, key: str) -> float | None:
        value = await self._client.get(self._prefix + key)
        return None if value is None else float(value)

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
