"""Metered API usage, for per-guild budgets and the cost report."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import func, insert, select

from bot.store.models import UsageRecord, require_aware
from bot.store.repositories._base import Repository
from bot.store.schema import usage_records

_INSERT: Final = insert(usage_records)


def _values(record: UsageRecord) -> dict[str, Any]:
    return {
        "guild_id": record.guild_id,
        "user_id": record.user_id,
        "kind": record.kind,
        "quantity": record.quantity,
        "cost_usd": record.cost_usd,
        "recorded_at": record.at,
    }


class UsageRepository(Repository):
    __slots__ = ()

    async def record(self, record: UsageRecord) -> None:
        await self._tx.insert(usage_records, _values(record))

    async def record_many(self, records: Sequence[UsageRecord]) -> None:
        """Store all records or none (one turn's STT, chat and TTS usage go in together)."""
        if not records:
            return
        async with self._tx.write() as connection:
            await connection.execute(_INSERT, [_values(record) for record in records])

    async def summary(self, guild_id: int, since: datetime) -> dict[str, tuple[float, float]]:
        """Per kind, the (quantity, cost_usd) totals of the guild's usage at or after ``since``.

        Kinds with no usage in the window are absent.
        """
        require_aware(since, "since")
        statement = (
            select(
                usage_records.c.kind,
                func.sum(usage_records.c.quantity),
                func.sum(usage_records.c.cost_usd),
            )
            .where(usage_records.c.guild_id == guild_id, usage_records.c.recorded_at >= since)
            .group_by(usage_records.c.kind)
        )
        async with self._tx.read() as connection:
            rows = (await connection.execute(statement)).all()
        return {kind: (float(quantity), float(cost)) for kind, quantity, cost in rows}

    async def total_cost(self, guild_id: int, since: datetime) -> float:
        """The guild's spend in USD at or after ``since`` (0.0 if none)."""
        require_aware(since, "since")
        statement = select(func.coalesce(func.sum(usage_records.c.cost_usd), 0.0)).where(
            usage_records.c.guild_id == guild_id, usage_records.c.recorded_at >= since
        )
        async with self._tx.read() as connection:
            return float((await connection.execute(statement)).scalar_one())
