"""UsageMeter over a real SQLite store in virtual time: limits, budgets, accounting, month rollover."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import event

from bot.limits import CommandLimiter, LimitSettings, MemoryCounterStore, PriceTable, RateLimiter, UsageMeter
from bot.store import Database

from .support import Clocks

GUILD, OTHER_GUILD, ALICE, BOB = 1001, 1002, 11, 12
PRICES = PriceTable(stt_usd_per_minute=0.006, chat_input_usd_per_million=0.10,
                    chat_output_usd_per_million=0.30, tts_usd_per_million_characters=16.0)


@pytest.fixture
def clocks() -> Clocks:
    return Clocks(dt.datetime(2026, 3, 31, 23, 0, tzinfo=dt.UTC))


@pytest.fixture
async def database(tmp_path: Path, clocks: Clocks) -> AsyncIterator[Database]:
    async with Database.open(f"sqlite:///{tmp_path / 'voxcord.db'}", clock=clocks.wall) as db:
        yield db


def make_meter(database: Database, clocks: Clocks, **limits: float) -> UsageMeter:
    store = MemoryCounterStore(clock=clocks.seconds)
    return UsageMeter(
        database=database, store=store, limiter=RateLimiter(store, clock=clocks.seconds), prices=PRICES,
        limits=LimitSettings(**limits), wall_clock=clocks.wall,
    )


async def test_record_prices_and_stores_each_quantity(database: Database, clocks: Clocks) -> None:
    meter = make_meter(database, clocks)
    await meter.record(GUILD, ALICE, "stt_seconds", 30.0)
    await meter.record(GUILD, ALICE, "chat_input_tokens", 2000)
    await meter.record(GUILD, ALICE, "chat_output_tokens", 100)
    await meter.record(GUILD, None, "tts_characters", 250)
    await meter.record(GUILD, None, "tts_characters", 0)  # nothing spoken: no row
    summary = await database.usage.summary(GUILD, clocks.now - dt.timedelta(days=1))
    assert summary == {
        "stt_seconds": (30.0, pytest.approx(0.003)),
        "chat_input_tokens": (2000.0, pytest.approx(0.0002)),
        "chat_output_tokens": (100.0, pytest.approx(0.00003)),
        "tts_characters": (250.0, pytest.approx(0.004)),
    }
    report = await meter.report(GUILD)
    assert report.total_usd == pytest.approx(0.00723)
    assert report.budget.limit_usd is None and not report.budget.exhausted
    with pytest.raises(ValueError, match="unknown usage kind"):
        await meter.record(GUILD, ALICE, "gpu_hours", 1)


async def test_a_member_over_their_rate_gets_one_notice_then_silence(database: Database, clocks: Clocks) -> None:
    meter = make_meter(database, clocks, user_turns_per_minute=3, guild_turns_per_minute=100)
    assert [await meter.admit(GUILD, ALICE) for _ in range(3)] == [None, None, None]
    refusals = [await meter.admit(GUILD, ALICE) for _ in range(6)]
    assert refusals[0] and f"<@{ALICE}>" in refusals[0] and "20 s" in refusals[0]
    assert refusals[1:] == [""] * 5, "one notice per limiting episode, then silent refusals"
    assert await meter.admit(GUILD, BOB) is None, "another member is not limited by Alice"
    assert await meter.admit(OTHER_GUILD, ALICE) is None, "limits are per guild"
    clocks.advance(20)
    assert await meter.admit(GUILD, ALICE) is None
    again = await meter.admit(GUILD, ALICE)
    assert again, "a new episode gets its own single notice"


async def test_the_guilds_own_turn_rate_limits_everyone_together(database: Database, clocks: Clocks) -> None:
    meter = make_meter(database, clocks, user_turns_per_minute=10, guild_turns_per_minute=100)
    await database.guilds.update(GUILD, turn_rate_per_minute=2)
    assert await meter.admit(GUILD, ALICE) is None
    assert await meter.admit(GUILD, BOB) is None
    notice = await meter.admit(GUILD, 13)
    assert notice and "2 questions a minute" in notice
    assert await meter.admit(GUILD, 14) == ""
    assert await meter.admit(OTHER_GUILD, 13) is None, "the default rate applies elsewhere"


async def test_budget_reached_says_so_once_and_refuses_until_raised(database: Database, clocks: Clocks) -> None:
    meter = make_meter(database, clocks)
    await database.guilds.update(GUILD, monthly_budget_usd=0.01)
    assert await meter.admit(GUILD, ALICE) is None
    await meter.record(GUILD, None, "tts_characters", 625)  # exactly $0.01
    notice = await meter.admit(GUILD, ALICE)
    assert notice and "$0.01" in notice and "March 2026" in notice and "/usage budget" in notice
    assert [await meter.admit(GUILD, user) for user in (ALICE, BOB, ALICE)] == ["", "", ""]
    assert (await meter.report(GUILD)).budget.exhausted
    assert await meter.admit(OTHER_GUILD, ALICE) is None, "another guild's budget is its own"

    await database.guilds.update(GUILD, monthly_budget_usd=0.02)
    assert await meter.admit(GUILD, ALICE) is None, "raising the budget resumes at once"
    await meter.record(GUILD, None, "tts_characters", 625)
    assert await meter.admit(GUILD, ALICE), "the raised budget, once reached, is announced once too"
    assert await meter.admit(GUILD, ALICE) == ""

    await database.guilds.update(GUILD, monthly_budget_usd=None)
    assert await meter.admit(GUILD, ALICE) is None, "no budget: no spending limit"


async def test_a_new_month_resets_the_spend(database: Database, clocks: Clocks) -> None:
    meter = make_meter(database, clocks)
    await database.guilds.update(GUILD, monthly_budget_usd=0.01)
    await meter.record(GUILD, ALICE, "stt_seconds", 600)  # $0.06 on 31 March, 23:00 UTC
    assert await meter.admit(GUILD, ALICE)
    clocks.advance(59 * 60 + 59)  # 23:59:59: still March
    assert await meter.admit(GUILD, ALICE) == ""
    clocks.advance(1)  # 1 April 00:00:00 UTC
    assert await meter.admit(GUILD, ALICE) is None
    report = await meter.report(GUILD)
    assert report.by_kind == {} and report.budget.month == "2026-04"
    assert report.budget.resets_at == dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    await meter.record(GUILD, ALICE, "stt_seconds", 600)
    notice = await meter.admit(GUILD, ALICE)
    assert notice and "April 2026" in notice, "April's budget reached: announced again, once"


def _count_spend_sums(database: Database) -> list[str]:
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "usage_records" in statement:
            seen.append(statement)

    event.listen(database._engine.sync_engine, "before_cursor_execute", record)
    return seen


async def test_the_months_spend_is_summed_once_then_kept_by_the_meter(database: Database, clocks: Clocks) -> None:
    # The budget is checked twice per turn; at 50 talking guilds its SUMs queued for seconds in
    # front of the STT connection (bench/scaling.py).
    await database.guilds.update(GUILD, monthly_budget_usd=0.02)
    await make_meter(database, clocks).record(GUILD, None, "tts_characters", 625)  # $0.01, an earlier process
    sums = _count_spend_sums(database)
    meter = make_meter(database, clocks)  # a restart: the spend so far comes from the database
    assert await meter.may_listen(GUILD, ALICE) is None
    assert await meter.admit(GUILD, ALICE) is None
    assert len(sums) == 1
    await meter.record(GUILD, None, "tts_characters", 625)  # $0.02: counted without a new SUM
    assert await meter.admit(GUILD, ALICE)
    assert await meter.may_listen(GUILD, BOB) == ""
    assert len(sums) == 1
    clocks.advance(3600)  # 1 April: a new month, summed anew
    assert await meter.admit(GUILD, ALICE) is None
    assert len(sums) == 2


async def test_without_a_budget_shard_groups_sum_no_spend(tmp_path: Path, clocks: Clocks) -> None:
    # Shard groups keep nothing read in memory (not the sole writer), so each budget check was a
    # SUM over the month's usage rows, twice per turn, in front of the utterance's STT connection
    # (bench.scaling --processes 2). With no budget set (the default) there is nothing to compare.
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    async with Database.open(url, clock=clocks.wall, sole_writer=False) as shared:
        meter = make_meter(shared, clocks)
        await meter.record(GUILD, None, "tts_characters", 625)
        sums = _count_spend_sums(shared)
        assert await meter.may_listen(GUILD, ALICE) is None
        assert await meter.admit(GUILD, ALICE) is None
        assert sums == []
        await shared.guilds.update(GUILD, monthly_budget_usd=0.01)  # a budget: checked every time
        assert await meter.admit(GUILD, ALICE)
        assert await meter.may_listen(GUILD, BOB) == ""
        assert len(sums) == 2
        assert (await meter.report(GUILD)).budget.spent_usd == pytest.approx(0.01)


async def test_a_zero_budget_stops_all_spending(database: Database, clocks: Clocks) -> None:
    meter = make_meter(database, clocks)
    await database.guilds.update(GUILD, monthly_budget_usd=0)
    assert await meter.admit(GUILD, ALICE)
    assert await meter.admit(GUILD, ALICE) == ""


async def test_december_rolls_over_into_the_next_year(database: Database, clocks: Clocks) -> None:
    clocks.now = dt.datetime(2026, 12, 31, 23, 30, tzinfo=dt.UTC)
    meter = make_meter(database, clocks)
    report = await meter.report(GUILD)
    assert report.budget.resets_at == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


async def test_commands_are_limited_per_member_and_per_guild(database: Database, clocks: Clocks) -> None:
    store = MemoryCounterStore(clock=clocks.seconds)
    limiter = CommandLimiter(database=database, limiter=RateLimiter(store, clock=clocks.seconds),
                             limits=LimitSettings(user_commands_per_minute=2, guild_commands_per_minute=3))
    assert [await limiter.check(GUILD, ALICE) for _ in range(2)] == [None, None]
    first = await limiter.check(GUILD, ALICE)
    assert first and "30 s" in first
    assert await limiter.check(GUILD, ALICE) == ""
    assert await limiter.check(GUILD, BOB) is None  # the guild's third
    guild_notice = await limiter.check(GUILD, 13)
    assert guild_notice and "server" in guild_notice
    assert await limiter.check(GUILD, 14) == ""
    assert await limiter.check(None, 13) is None, "direct messages have only the member's bucket"
    clocks.advance(30)
    assert await limiter.check(GUILD, ALICE) is None
