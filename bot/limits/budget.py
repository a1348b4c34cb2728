"""Per-guild monthly budgets: calendar months in UTC, spend summed from the usage records.

The database is the source of truth (it survives restarts and is shared by every shard); it is
summed once per guild and month, and the rows this process records are added as they commit.
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
    """The month's spend is summed from the database once per guild and month, then kept up to
    date by ``recorded`` as the meter stores each usage row: the check runs twice per turn, and
    at 50 talking guilds the SUMs queued for the pool's connections in front of the STT connection
    (bench/scaling.py). Only when this process is the database's sole writer (``Database.sole_writer``);
    otherwise another process's usage counts too, so each check sums again."""

    def __init__(self, database: Database, *, wall_clock: Callable[[], dt.datetime]) -> None:
        self._db = database
        self._wall_clock = wall_clock
        self._spent: dict[tuple[int, dt.datetime], float] = {}
        self._records: dict[int, int] = {}  # rows recorded per guild: a SUM that overlapped one is not kept

    async def status(self, guild_id: int) -> BudgetStatus:
        return await self.status_for(await self._db.guilds.get(guild_id))

    def recorded(self, guild_id: int, cost_usd: float, at: dt.datetime) -> None:
        """A usage row of ``cost_usd`` was committed for the guild at ``at``."""
        self._records[guild_id] = self._records.get(guild_id, 0) + 1
        key = (guild_id, month_start(at))
        if key in self._spent:
            self._spent[key] += cost_usd

    async def _spent_since(self, guild_id: int, since: dt.datetime) -> float:
        key = (guild_id, since)
        spent = self._spent.get(key)
        if spent is None:
            records = self._records.get(guild_id, 0)
            spent = await self._db.usage.total_cost(guild_id, since)
            if self._db.sole_writer and self._records.get(guild_id, 0) == records:
                # Last month's total is never asked again.
                for old in [k for k in self._spent if k[0] == guild_id]:
                    del self._spent[old]
                self._spent[key] = spent
        return spent

    async def exhausted(self, settings: GuildSettings) -> BudgetStatus | None:
        """The guild's status when its monthly budget is used up, else None. Without a budget (the
        default) there is nothing to compare, so nothing is summed: with shard groups every check
        is otherwise a SUM over the month's usage rows in PostgreSQL, in front of the utterance's
        STT connection (twice per turn; bench.scaling --processes 2, docs/benchmarks.md 6)."""
        if settings.monthly_budget_usd is None:
            return None
        status = await self.status_for(settings)
        return status if status.exhausted else None

    async def status_for(self, settings: GuildSettings) -> BudgetStatus:
        now = self._wall_clock()
        spent = await self._spent_since(settings.guild_id, month_start(now))
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
