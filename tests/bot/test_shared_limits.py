"""With REDIS_URL, separate bot processes (shard groups) share one set of rate limits."""

from __future__ import annotations

from pathlib import Path

from bot.__main__ import assemble
from bot.config import Settings
from tests.harness import TEST_DISCORD_TOKEN, TEST_MISTRAL_KEY

GUILD, USER = 1234, 5678


def settings(data: Path, **extra: object) -> Settings:
    values = {"database_url": f"sqlite:///{data / 'voxcord.db'}", "rate_user_commands_per_minute": 3, **extra}
    return Settings(_env_file=None, discord_token=TEST_DISCORD_TOKEN, mistral_api_key=TEST_MISTRAL_KEY, **values)


async def allowed_commands(first, second, attempts: int) -> int:
    """Alternate a member's commands between two bots; count how many each let through."""
    allowed = 0
    for n in range(attempts):
        bot = first if n % 2 == 0 else second
        if await bot.command_limiter.check(GUILD, USER) is None:
            allowed += 1
    return allowed


async def test_two_processes_share_one_members_command_budget_through_redis(tmp_path: Path, redis_url: str) -> None:
    shared = settings(tmp_path, redis_url=redis_url)
    async with assemble(shared) as first, assemble(shared) as second:
        assert await allowed_commands(first, second, 8) == 3


async def test_without_redis_each_process_counts_alone(tmp_path: Path) -> None:
    alone = settings(tmp_path)
    async with assemble(alone) as first, assemble(alone) as second:
        assert await allowed_commands(first, second, 8) == 6


async def test_two_processes_enforce_one_budget_and_announce_it_once(
    tmp_path: Path, redis_url: str, postgres_url: str
) -> None:
    # The spend is summed from the shared database's usage rows; Redis only remembers that the
    # guild was told, so the notice is not repeated by the other process.
    shared = settings(tmp_path, redis_url=redis_url, database_url=postgres_url)
    async with assemble(shared) as first, assemble(shared) as second:
        await first.database.guilds.update(GUILD, monthly_budget_usd=0.01)
        assert await second.meter.admit(GUILD, USER) is None
        await first.meter.record(GUILD, USER, "tts_characters", 1_000)  # $0.016 at $16 per million
        notice = await second.meter.admit(GUILD, USER)
        assert notice and "budget" in notice
        assert await first.meter.admit(GUILD, USER) == ""  # refused, and not announced again
        assert await second.meter.admit(GUILD, USER) == ""
