"""A guild's own rates (/usage member-turn-rate, /usage command-rate) over the operator's defaults.

UsageMeter and CommandLimiter over a real SQLite store in virtual time; the counter store is the
in-process one, and Redis where the case is about several processes sharing the same limits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from unittest.mock import create_autospec

import pytest

from bot.limits import (
    CommandLimiter,
    CounterStore,
    GuildLimits,
    LimitSettings,
    MemoryCounterStore,
    RateLimiter,
    UsageMeter,
)
from bot.limits.redis_backend import RedisCounterStore
from bot.store import Database, GuildSettings
from bot.store.repositories.guilds import GuildSettingsRepository

from .support import Clocks

GUILD, OTHER_GUILD, ALICE, BOB = 1001, 1002, 11, 12
DEFAULTS = LimitSettings(
    user_turns_per_minute=8, guild_turns_per_minute=30, user_commands_per_minute=12, guild_commands_per_minute=60
)


@pytest.fixture
def clocks() -> Clocks:
    return Clocks(dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC))


@pytest.fixture
async def database(tmp_path: Path, clocks: Clocks) -> AsyncIterator[Database]:
    async with Database.open(f"sqlite:///{tmp_path / 'voxcord.db'}", clock=clocks.wall) as db:
        yield db


def make_meter(database: Database, clocks: Clocks, store: CounterStore | None = None) -> UsageMeter:
    store = store or MemoryCounterStore(clock=clocks.seconds)
    return UsageMeter(database=database, store=store, limiter=RateLimiter(store, clock=clocks.seconds),
                      limits=DEFAULTS, wall_clock=clocks.wall)


def make_command_limiter(database: Database, clocks: Clocks, store: CounterStore | None = None) -> CommandLimiter:
    store = store or MemoryCounterStore(clock=clocks.seconds)
    return CommandLimiter(database=database, limiter=RateLimiter(store, clock=clocks.seconds), limits=DEFAULTS)


# ------------------------------------------------------------------ effective rates


def test_a_guild_without_its_own_rates_gets_the_operators_defaults() -> None:
    assert DEFAULTS.for_guild(GuildSettings(guild_id=GUILD)) == GuildLimits(
        member_turns=8, guild_turns=30, member_commands=12, guild_commands=60, own=frozenset()
    )


def test_a_guilds_own_rates_replace_the_defaults_and_say_which_are_its_own() -> None:
    limits = DEFAULTS.for_guild(GuildSettings(
        guild_id=GUILD, member_turn_rate_per_minute=2, member_command_rate_per_minute=40, command_rate_per_minute=100,
    ))
    assert (limits.member_turns, limits.guild_turns, limits.member_commands, limits.guild_commands) == (2, 30, 40, 100)
    assert limits.own == {"member_turns", "member_commands", "guild_commands"}


def test_a_member_never_gets_more_than_the_whole_guild() -> None:
    limits = DEFAULTS.for_guild(GuildSettings(
        guild_id=GUILD, turn_rate_per_minute=3, member_turn_rate_per_minute=10, command_rate_per_minute=5,
    ))
    assert (limits.member_turns, limits.guild_turns) == (3, 3)
    assert (limits.member_commands, limits.guild_commands) == (5, 5), "the default 12 is capped too"


# ------------------------------------------------------------------ voice turns


async def test_the_guilds_member_turn_rate_limits_each_member(database: Database, clocks: Clocks) -> None:
    meter = make_meter(database, clocks)
    await database.guilds.update(GUILD, member_turn_rate_per_minute=1)
    assert await meter.admit(GUILD, ALICE) is None
    notice = await meter.admit(GUILD, ALICE)
    assert notice and f"<@{ALICE}>" in notice and "1 question a minute" in notice and "60 s" in notice
    assert [await meter.admit(GUILD, ALICE) for _ in range(3)] == ["", "", ""], "one notice per episode"
    assert await meter.admit(GUILD, BOB) is None, "another member has their own bucket"
    assert [await meter.admit(OTHER_GUILD, ALICE) for _ in range(8)] == [None] * 8, "the default elsewhere"
    clocks.advance(60)
    assert await meter.admit(GUILD, ALICE) is None


async def test_the_member_turn_rate_is_capped_by_the_guilds(database: Database, clocks: Clocks) -> None:
    meter = make_meter(database, clocks)
    await database.guilds.update(GUILD, turn_rate_per_minute=2, member_turn_rate_per_minute=50)
    assert [await meter.admit(GUILD, ALICE) for _ in range(2)] == [None, None]
    notice = await meter.admit(GUILD, ALICE)
    assert notice and f"<@{ALICE}>" in notice and "2 questions a minute" in notice


async def test_a_changed_member_turn_rate_takes_effect_at_once(database: Database, clocks: Clocks) -> None:
    meter = make_meter(database, clocks)
    await database.guilds.update(GUILD, member_turn_rate_per_minute=1)
    assert await meter.admit(GUILD, ALICE) is None
    assert await meter.admit(GUILD, ALICE)
    # Raised while Alice is limited: she is heard at once, not after the old rate's 60 s refill.
    await database.guilds.update(GUILD, member_turn_rate_per_minute=3)
    assert [await meter.admit(GUILD, ALICE) for _ in range(3)] == [None, None, None]
    raised = await meter.admit(GUILD, ALICE)
    assert raised and "3 questions a minute" in raised, "the new limit's episode gets its own notice"
    # Cut to 2: at most the new burst, then the new rate holds (a token every 30 s).
    await database.guilds.update(GUILD, member_turn_rate_per_minute=2)
    assert [await meter.admit(GUILD, ALICE) for _ in range(2)] == [None, None]
    cut = await meter.admit(GUILD, ALICE)
    assert cut and "2 questions a minute" in cut
    clocks.advance(20)
    assert await meter.admit(GUILD, ALICE) == "", "still limited at 2 a minute"
    clocks.advance(10)
    assert await meter.admit(GUILD, ALICE) is None
    # Cleared: back to the operator's 8 a minute.
    await database.guilds.update(GUILD, member_turn_rate_per_minute=None)
    assert [await meter.admit(GUILD, ALICE) for _ in range(8)] == [None] * 8
    assert await meter.admit(GUILD, ALICE)


# ------------------------------------------------------------------ slash commands


async def test_the_guilds_command_rates_limit_members_and_the_guild(database: Database, clocks: Clocks) -> None:
    limiter = make_command_limiter(database, clocks)
    await database.guilds.update(GUILD, member_command_rate_per_minute=2, command_rate_per_minute=3)
    assert [await limiter.check(GUILD, ALICE) for _ in range(2)] == [None, None]
    member_notice = await limiter.check(GUILD, ALICE)
    assert member_notice and "Slow down" in member_notice and "30 s" in member_notice
    assert await limiter.check(GUILD, ALICE) == ""
    assert await limiter.check(GUILD, BOB) is None, "the guild's third"
    guild_notice = await limiter.check(GUILD, 13)
    assert guild_notice and "server" in guild_notice
    assert await limiter.check(GUILD, 14) == ""
    assert [await limiter.check(OTHER_GUILD, ALICE) for _ in range(12)] == [None] * 12, "the default elsewhere"
    assert [await limiter.check(None, ALICE) for _ in range(12)] == [None] * 12, "direct messages: the default"
    assert await limiter.check(None, ALICE)


async def test_a_changed_command_rate_takes_effect_at_once(database: Database, clocks: Clocks) -> None:
    limiter = make_command_limiter(database, clocks)
    assert [await limiter.check(GUILD, ALICE) for _ in range(3)] == [None] * 3
    await database.guilds.update(GUILD, member_command_rate_per_minute=1)
    assert await limiter.check(GUILD, ALICE) is None
    assert await limiter.check(GUILD, ALICE), "the next command over the new limit is refused with a notice"
    assert await limiter.check(GUILD, ALICE) == ""
    await database.guilds.update(GUILD, member_command_rate_per_minute=None)
    assert await limiter.check(GUILD, ALICE) is None, "cleared: the default's bucket, not the cut one"


async def test_the_command_limiter_falls_back_to_the_defaults_when_the_store_fails(clocks: Clocks) -> None:
    # interaction_check has no error handler: an exception would leave every command unanswered.
    database = create_autospec(Database, instance=True)
    database.guilds = create_autospec(GuildSettingsRepository, instance=True)
    database.guilds.get.side_effect = OSError("database is down")
    limiter = make_command_limiter(database, clocks)
    assert [await limiter.check(GUILD, ALICE) for _ in range(12)] == [None] * 12
    assert await limiter.check(GUILD, ALICE)


# ------------------------------------------------------------------ shared through Redis


async def test_a_guilds_rates_apply_in_every_process_sharing_redis(database: Database, redis_url: str) -> None:
    # Redis expires the notice markers on its own clock, so virtual time starts at the real now.
    clocks = Clocks(dt.datetime.now(dt.UTC))
    async with RedisCounterStore.from_url(redis_url) as first, RedisCounterStore.from_url(redis_url) as second:
        limiters = [make_command_limiter(database, clocks, store) for store in (first, second)]
        meters = [make_meter(database, clocks, store) for store in (first, second)]
        await database.guilds.update(GUILD, member_command_rate_per_minute=2, member_turn_rate_per_minute=1)
        checks = [await limiters[n % 2].check(GUILD, ALICE) for n in range(4)]
        assert checks[:2] == [None, None] and checks[2] and checks[3] == "", "one notice across both processes"
        assert await meters[0].admit(GUILD, ALICE) is None
        notice = await meters[1].admit(GUILD, ALICE)
        assert notice and "1 question a minute" in notice
        assert await meters[0].admit(GUILD, ALICE) == ""
        await database.guilds.update(GUILD, member_turn_rate_per_minute=2)
        assert await meters[1].admit(GUILD, ALICE) is None, "a raise applies at once in the other process too"
