"""Usage metrics: what the conversation's meter records is also counted for Prometheus."""

from __future__ import annotations

from typing import Protocol

from bot.limits.pricing import PriceTable
from bot.metrics.families import Metrics


class Meter(Protocol):
    """The conversation's TurnMeter (bot/limits/meter.py ``UsageMeter`` in production)."""

    async def admit(self, guild_id: int, user_id: int) -> str | None: ...

    async def may_listen(self, guild_id: int, user_id: int) -> str | None: ...

    def rate_limited(self, guild_id: int, user_id: int) -> bool: ...

    async def record(self, guild_id: int, user_id: int | None, kind: str, quantity: float) -> None: ...


class CountedMeter:
    """Wraps a meter: ``record`` also counts the quantity and its estimated cost.

    Counted once the inner ``record`` returns: an unknown kind raises there and is not counted; a
    row the database could not store is still counted, since the service was used all the same.
    """

    def __init__(self, inner: Meter, metrics: Metrics, prices: PriceTable) -> None:
        self._inner = inner
        self._metrics = metrics
        self._prices = prices

    async def admit(self, guild_id: int, user_id: int) -> str | None:
        return await self._inner.admit(guild_id, user_id)

    async def may_listen(self, guild_id: int, user_id: int) -> str | None:
        return await self._inner.may_listen(guild_id, user_id)

    def rate_limited(self, guild_id: int, user_id: int) -> bool:
        return self._inner.rate_limited(guild_id, user_id)

    async def record(self, guild_id: int, user_id: int | None, kind: str, quantity: float) -> None:
        await self._inner.record(guild_id, user_id, kind, quantity)
        if quantity and quantity > 0:
            self._metrics.count_usage(kind, quantity, self._prices.cost(kind, quantity))
