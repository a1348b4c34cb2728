"""What a guild's conversations cost, its budget and its rate limits: what /usage reads and sets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.errors import UserFacingError

if TYPE_CHECKING:
    from bot.limits import GuildLimits, UsageMeter
    from bot.limits.budget import UsageReport
    from bot.store import Database


class UsageService:
    def __init__(self, database: Database, meter: UsageMeter | None) -> None:
        self._db = database
        self._meter = meter

    @property
    def meter(self) -> UsageMeter:
        if self._meter is None:
            raise UserFacingError("Usage accounting is not enabled on this bot.")
        return self._meter

    async def report(self, guild_id: int) -> tuple[UsageReport, GuildLimits]:
        meter = self.meter
        report = await meter.report(guild_id)
        return report, meter.guild_limits(await self._db.guilds.get(guild_id))

    async def set_budget(self, guild_id: int, usd: float | None) -> None:
        await self._db.guilds.update(guild_id, monthly_budget_usd=usd)

    async def set_turn_rate(self, guild_id: int, per_minute: int | None) -> GuildLimits:
        meter = self.meter
        return meter.guild_limits(await self._db.guilds.update(guild_id, turn_rate_per_minute=per_minute))

    async def set_member_turn_rate(self, guild_id: int, per_minute: int | None) -> GuildLimits:
        meter = self.meter
        return meter.guild_limits(await self._db.guilds.update(guild_id, member_turn_rate_per_minute=per_minute))

    async def set_command_rate(self, guild_id: int, per_member: int | None, per_server: int | None) -> GuildLimits:
        meter = self.meter
        settings = await self._db.guilds.update(
            guild_id, member_command_rate_per_minute=per_member, command_rate_per_minute=per_server
        )
        return meter.guild_limits(settings)
