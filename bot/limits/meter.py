"""The conversation's TurnMeter and the slash-command limiter.

``UsageMeter.admit`` runs before any audio of an utterance goes to STT: the guild's monthly
budget first, then the member's and the guild's token buckets, at the guild's own rates where an
admin set them (``/usage``) and the operator's ``RATE_*`` defaults otherwise. ``record`` prices
each service call and stores it. A refusal is announced once per limiting episode (or once per
month and budget), never per utterance, so a limited channel is not flooded with notices.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.limits.buckets import CounterStore, Decision, Rate, RateLimiter
from bot.limits.budget import BudgetStatus, MonthlyBudgets, UsageReport, monthly_report
from bot.limits.pricing import DEFAULT_PRICES, PriceTable
from bot.store.models import USAGE_KINDS, GuildSettings, UsageRecord

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.store import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GuildLimits:
    """The rates in force in one guild, per minute: its own settings over the operator's defaults."""

    member_turns: float
    guild_turns: float
    member_commands: float
    guild_commands: float
    # Which of the four this guild set itself; the others are the operator's defaults.
    own: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """The operator's defaults (RATE_* settings); a guild's own rates replace them (``for_guild``)."""

    user_turns_per_minute: float = 8.0
    guild_turns_per_minute: float = 30.0
    user_commands_per_minute: float = 12.0
    guild_commands_per_minute: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> LimitSettings:
        return cls(
            user_turns_per_minute=settings.rate_user_turns_per_minute,
            guild_turns_per_minute=settings.rate_guild_turns_per_minute,
            user_commands_per_minute=settings.rate_user_commands_per_minute,
            guild_commands_per_minute=settings.rate_guild_commands_per_minute,
        )

    def for_guild(self, guild: GuildSettings) -> GuildLimits:
        own = {
            "member_turns": guild.member_turn_rate_per_minute,
            "guild_turns": guild.turn_rate_per_minute,
            "member_commands": guild.member_command_rate_per_minute,
            "guild_commands": guild.command_rate_per_minute,
        }
        defaults = {
            "member_turns": self.user_turns_per_minute,
            "guild_turns": self.guild_turns_per_minute,
            "member_commands": self.user_commands_per_minute,
            "guild_commands": self.guild_commands_per_minute,
        }
        rates = {name: float(value) if value is not None else defaults[name] for name, value in own.items()}
        return GuildLimits(
            # One member cannot take more than the whole guild may.
            member_turns=min(rates["member_turns"], rates["guild_turns"]),
            guild_turns=rates["guild_turns"],
            member_commands=min(rates["member_commands"], rates["guild_commands"]),
            guild_commands=rates["guild_commands"],
            own=frozenset(name for name, value in own.items() if value is not None),
        )


def _seconds(retry_after: float) -> str:
    if not math.isfinite(retry_after):
        return "a while"
    return f"{max(1, math.ceil(retry_after))} s"


def _questions(rate: float) -> str:
    return f"{rate:g} question{'' if rate == 1 else 's'}"


def _month_name(label: str) -> str:
    return dt.datetime.strptime(label, "%Y-%m").replace(tzinfo=dt.UTC).strftime("%B %Y")


def budget_notice(status: BudgetStatus) -> str:
    assert status.limit_usd is not None
    return (
        f"This server has used its ${status.limit_usd:.2f} budget for {_month_name(status.month)}, "
        "so I'll stop answering until an admin raises it with /usage budget or the month ends."
    )


class UsageMeter:
    """``bot.conversation.guild.TurnMeter``: budgets, voice-turn rate limits, usage accounting."""

    def __init__(
        self,
        *,
        database: Database,
        store: CounterStore,
        limiter: RateLimiter,
        prices: PriceTable = DEFAULT_PRICES,
        limits: LimitSettings | None = None,
        wall_clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._db = database
        self._store = store
        self._limiter = limiter
        self._prices = prices
        self._limits = limits or LimitSettings()
        self._wall_clock = wall_clock
        self.budgets = MonthlyBudgets(database, wall_clock=wall_clock)
        # (guild, member) -> wall-clock second their refused turn rate refills (rate_limited).
        self._limited_until: dict[tuple[int, int], float] = {}

    @property
    def prices(self) -> PriceTable:
        return self._prices

    async def report(self, guild_id: int) -> UsageReport:
        return await monthly_report(self.budgets, self._db, guild_id)

    def guild_limits(self, settings: GuildSettings) -> GuildLimits:
        """The turn and command rates in force in the guild with these settings."""
        return self._limits.for_guild(settings)

    async def may_listen(self, guild_id: int, user_id: int) -> str | None:
        settings = await self._db.guilds.get(guild_id)
        if (status := await self.budgets.exhausted(settings)) is not None:
            return await self._budget_refusal(guild_id, status)
        return None

    def rate_limited(self, guild_id: int, user_id: int) -> bool:
        until = self._limited_until.get((guild_id, user_id))
        if until is None:
            return False
        if until <= self._wall_clock().timestamp():
            del self._limited_until[(guild_id, user_id)]
            return False
        return True

    async def admit(self, guild_id: int, user_id: int) -> str | None:
        settings = await self._db.guilds.get(guild_id)
        if (status := await self.budgets.exhausted(settings)) is not None:
            return await self._budget_refusal(guild_id, status)
        limits = self.guild_limits(settings)
        guild_rate, user_rate = limits.guild_turns, limits.member_turns
        # The member's bucket first: a refused member then takes nothing from the guild's.
        user = await self._limiter.hit(f"turn:user:{guild_id}:{user_id}", Rate.per_minute_with_burst(user_rate))
        if not user.allowed:
            self._limited_until[(guild_id, user_id)] = self._wall_clock().timestamp() + user.retry_after
            return self._notice(user, f"<@{user_id}>, I can take {_questions(user_rate)} a minute "
                                      f"from one person; I'll listen to you again in {_seconds(user.retry_after)}.")
        guild = await self._limiter.hit(f"turn:guild:{guild_id}", Rate.per_minute_with_burst(guild_rate))
        if not guild.allowed:
            return self._notice(guild, f"This server's limit is {_questions(guild_rate)} a minute; "
                                       f"I'll listen again in {_seconds(guild.retry_after)}.")
        return None

    async def record(self, guild_id: int, user_id: int | None, kind: str, quantity: float) -> None:
        if kind not in USAGE_KINDS:
            raise ValueError(f"unknown usage kind {kind!r}")
        if not quantity or quantity < 0:
            return
        record = UsageRecord(
            guild_id=guild_id, user_id=user_id, kind=kind, quantity=float(quantity),  # type: ignore[arg-type]
            cost_usd=self._prices.cost(kind, quantity), at=self._wall_clock(),
        )
        try:
            await self._db.usage.record(record)
            self.budgets.recorded(guild_id, record.cost_usd, record.at)
        except Exception:
            # Losing one usage row must not break the conversation; it is loud in the log.
            log.exception("Guild %s: could not record %s usage", guild_id, kind)

    async def _budget_refusal(self, guild_id: int, status: BudgetStatus) -> str:
        # Keyed by month and amount: raising the budget (or a new month) starts a new episode.
        key = f"budget-noticed:{guild_id}:{status.month}:{status.limit_usd!r}"
        count = await self._store.add(key, 1.0, expire_at=status.resets_at.timestamp())
        if count <= 1.0:
            log.info("Guild %s: monthly budget of $%.2f reached ($%.4f spent)",
                     guild_id, status.limit_usd, status.spent_usd)
            return budget_notice(status)
        return ""

    @staticmethod
    def _notice(decision: Decision, message: str) -> str:
        return message if decision.first_refusal else ""


class CommandLimiter:
    """Slash-command token buckets per member and per guild; the tree asks before each command.

    The rates are the guild's own (``/usage command-rate``) where set, read at each command, so a
    change applies to the next one in every process.
    """

    def __init__(self, *, database: Database, limiter: RateLimiter, limits: LimitSettings | None = None) -> None:
        self._db = database
        self._limiter = limiter
        self._limits = limits or LimitSettings()

    async def check(self, guild_id: int | None, user_id: int, *, manages_guild: bool = False) -> str | None:
        """None to run the command; a reply for the first refusal of an episode; "" to drop it.

        ``manages_guild``: the member may change these limits, so others using up the server's
        commands must not lock them out; only their own per-member rate applies."""
        if guild_id is None:
            user = await self._limiter.hit(
                f"command:user:dm:{user_id}", Rate.per_minute_with_burst(self._limits.user_commands_per_minute)
            )
            return None if user.allowed else self._member_refusal(user)
        limits = await self._guild_limits(guild_id)
        user = await self._limiter.hit(
            f"command:user:{guild_id}:{user_id}", Rate.per_minute_with_burst(limits.member_commands)
        )
        if not user.allowed:
            return self._member_refusal(user)
        if manages_guild:
            return None
        guild = await self._limiter.hit(f"command:guild:{guild_id}", Rate.per_minute_with_burst(limits.guild_commands))
        if not guild.allowed:
            return UsageMeter._notice(
                guild, f"This server is sending me too many commands; try again in {_seconds(guild.retry_after)}.")
        return None

    async def _guild_limits(self, guild_id: int) -> GuildLimits:
        try:
            settings = await self._db.guilds.get(guild_id)
        except Exception as error:
            # The tree's interaction_check has no error handler: an exception here would leave the
            # command unanswered. The operator's defaults still limit; the command reports its own
            # database trouble if it needs the store.
            log.warning("Guild %s: could not read its command rates, using the defaults: %s", guild_id, error)
            settings = GuildSettings(guild_id=guild_id)
        return self._limits.for_guild(settings)

    @staticmethod
    def _member_refusal(decision: Decision) -> str:
        return UsageMeter._notice(
            decision, f"Slow down a little: you can use me again in {_seconds(decision.retry_after)}.")
