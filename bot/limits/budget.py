"""Per-guild monthly budgets: calendar months in UTC, spend summed from the usage records.

The database is the source of truth (it survives restarts and is shared by every shard); one
indexed SUM per admitted utterance is cheap next to the STT call it guards.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.store import Database, GuildSettings


def month_start(moment: dt.datetime) -> dt.datetime:
    """The first instant of ``moment``'s calendar month, in UTC."""
    utc = moment.astimezone(dt.UTC)
    return utc.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(moment: dt.datetime) -> dt.datetime:
    start = month_start(moment)
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


def month_label(moment: dt.datetime) -> str:
    return month_start(moment).strftime("%Y-%m")


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    limit_usd: float | None  # None: no budget set
    spent_usd: float
    month: str  # "YYYY-MM"
    resets_at: dt.datetime

    @property
    def exhausted(self) -> bool:
        return self.limit_usd is not None and self.spent_usd >= self.limit_usd


class MonthlyBudgets:
    def __init__(self, database: Database, *, wall_clock: Callable[[], dt.datetime]) -> None:
        self._db = database
        self._wall_clock = wall_clock

    async def status(self, guild_id: int) -> BudgetStatus:
        return await self.status_for(await self._db.guilds.get(guild_id))

    async def status_for(self, settings: GuildSettings) -> BudgetStatus:
        now = self._wall_clock()
        spent = await self._db.usage.total_cost(settings.guild_id, month_start(now))
        return BudgetStatus(
            limit_usd=settings.monthly_budget_usd, spent_usd=spent, month=month_label(now),
            resets_at=next_month_start(now),
        )


@dataclass(frozen=True, slots=True)
class UsageReport:
    """This month's use for /usage: per kind (quantity, cost_usd), and the budget."""

    by_kind: dict[str, tuple[float, float]]
    budget: BudgetStatus

    @property
    def total_usd(self) -> float:
        return sum(cost for _quantity, cost in self.by_kind.values())


async def monthly_report(budgets: MonthlyBudgets, database: Database, guild_id: int) -> UsageReport:
    status = await budgets.status(guild_id)
    since = month_start(status.resets_at - dt.timedelta(days=1))
    return UsageReport(by_kind=await database.usage.summary(guild_id, since), budget=status)
