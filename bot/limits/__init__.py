"""Rate limits, monthly budgets and usage pricing: what stops the bot from spending too much."""

from __future__ import annotations

from bot.limits.buckets import CounterStore, Decision, MemoryCounterStore, Rate, RateLimiter
from bot.limits.budget import BudgetStatus, MonthlyBudgets, month_start, next_month_start
from bot.limits.meter import CommandLimiter, GuildLimits, LimitSettings, UsageMeter
from bot.limits.pricing import DEFAULT_PRICES, KIND_LABELS, PriceTable

__all__ = [
    "DEFAULT_PRICES",
    "KIND_LABELS",
    "BudgetStatus",
    "CommandLimiter",
    "CounterStore",
    "Decision",
    "GuildLimits",
    "LimitSettings",
    "MemoryCounterStore",
    "MonthlyBudgets",
    "PriceTable",
    "Rate",
    "RateLimiter",
    "UsageMeter",
    "month_start",
    "next_month_start",
]
