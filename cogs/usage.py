"""/usage show and /admin usage budget|turn-rate|member-turn-rate|command-rate: what this server's
conversations cost this month, and its limits."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.interactions import reply
from bot.limits import KIND_LABELS
from cogs.admin import AdminCommands, add_admin_commands

if TYPE_CHECKING:
    from bot.app import VoxcordBot
    from bot.limits import GuildLimits
    from bot.limits.budget import UsageReport

MAX_BUDGET_USD = 1_000_000.0
MAX_TURN_RATE = 600
MAX_COMMAND_RATE = 600


def _quantity(kind: str, quantity: float) -> str:
    if kind == "stt_seconds":
        minutes, seconds = divmod(round(quantity), 60)
        return f"{minutes} min {seconds:02d} s"
    return f"{round(quantity):,}"


def _count(number: float, noun: str) -> str:
    return f"{number:g} {noun}{'' if number == 1 else 's'}"


def _rate(limits: GuildLimits, name: str, who: str) -> str:
    source = "set here" if name in limits.own else "default"
    return f"{getattr(limits, name):g} a minute {who} ({source})"


def format_limits(limits: GuildLimits) -> list[str]:
    return [
        f"**Voice turn limit:** {_rate(limits, 'guild_turns', 'for the server')}, "
        f"{_rate(limits, 'member_turns', 'per member')}.",
        f"**Command limit:** {_rate(limits, 'guild_commands', 'for the server')}, "
        f"{_rate(limits, 'member_commands', 'per member')}.",
    ]


def format_report(report: UsageReport, limits: GuildLimits) -> str:
    budget = report.budget
    lines = [f"**Usage for {budget.month}** (UTC month; resets {discord.utils.format_dt(budget.resets_at, 'D')})"]
    if not report.by_kind:
        lines.append("Nothing used yet this month.")
    for kind, label in KIND_LABELS.items():
        if kind in report.by_kind:
            quantity, cost = report.by_kind[kind]
            lines.append(f"- {label}: {_quantity(kind, quantity)} (${cost:.4f})")
    lines.append(f"**Total:** ${report.total_usd:.4f}")
    if budget.limit_usd is None:
        lines.append("**Budget:** none set (an admin can set one with /admin usage budget).")
    else:
        state = " (reached: I'm not answering until it is raised or the month ends)" if budget.exhausted else ""
        lines.append(f"**Budget:** ${budget.spent_usd:.4f} of ${budget.limit_usd:.2f} used{state}.")
    lines.extend(format_limits(limits))
    return "\n".join(lines)


@app_commands.guild_only()
class UsageCog(commands.GroupCog, group_name="usage"):
    """What the bot costs this server, and the limits on it."""

    def __init__(self, bot: VoxcordBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="show")
    async def show(self, interaction: discord.Interaction) -> None:
        """Show this month's usage and cost for this server, its budget and its rate limits."""
        assert interaction.guild_id is not None
        report, limits = await self.bot.usage.report(interaction.guild_id)
        await reply(interaction, format_report(report, limits))


class UsageAdmin(AdminCommands):
    def __init__(self, bot: VoxcordBot) -> None:
        super().__init__(bot, name="usage", description="This server's spending limit and rate limits.")

    @app_commands.command(name="budget")
    @app_commands.describe(usd="Monthly limit in US dollars (0 stops all spending); leave empty for no limit.")
    async def budget(
        self, interaction: discord.Interaction, usd: app_commands.Range[float, 0.0, MAX_BUDGET_USD] | None = None
    ) -> None:
        """Set this server's monthly spending limit; the bot stops answering when it is reached."""
        assert interaction.guild_id is not None
        await self.bot.usage.set_budget(interaction.guild_id, usd)
        await reply(interaction, "No monthly budget: I'll answer without a spending limit." if usd is None
                    else f"Monthly budget set to ${usd:.2f}. See /usage show for this month's spend.")

    @app_commands.command(name="turn-rate")
    @app_commands.describe(per_minute="Spoken questions a minute for the whole server; leave empty for the default.")
    async def turn_rate(
        self, interaction: discord.Interaction, per_minute: app_commands.Range[int, 1, MAX_TURN_RATE] | None = None
    ) -> None:
        """Limit how many spoken questions a minute the bot takes in this server."""
        assert interaction.guild_id is not None
        limits = await self.bot.usage.set_turn_rate(interaction.guild_id, per_minute)
        await reply(interaction, f"I'll take up to {_count(limits.guild_turns, 'spoken question')} a minute "
                    "in this server.")

    @app_commands.command(name="member-turn-rate")
    @app_commands.describe(per_minute="Spoken questions a minute from one member; leave empty for the default.")
    async def member_turn_rate(
        self, interaction: discord.Interaction, per_minute: app_commands.Range[int, 1, MAX_TURN_RATE] | None = None
    ) -> None:
        """Limit how many spoken questions a minute the bot takes from one member here."""
        assert interaction.guild_id is not None
        limits = await self.bot.usage.set_member_turn_rate(interaction.guild_id, per_minute)
        await reply(interaction, f"I'll take up to {_count(limits.member_turns, 'spoken question')} a minute from "
                    f"each member (and {limits.guild_turns:g} from the whole server).")

    @app_commands.command(name="command-rate")
    @app_commands.describe(
        per_member="Slash commands a minute from one member; leave empty for the default.",
        per_server="Slash commands a minute from the whole server; leave empty for the default.",
    )
    async def command_rate(
        self,
        interaction: discord.Interaction,
        per_member: app_commands.Range[int, 1, MAX_COMMAND_RATE] | None = None,
        per_server: app_commands.Range[int, 1, MAX_COMMAND_RATE] | None = None,
    ) -> None:
        """Limit how many slash commands a minute the bot takes here; empty options go back to the default."""
        assert interaction.guild_id is not None
        limits = await self.bot.usage.set_command_rate(interaction.guild_id, per_member, per_server)
        await reply(interaction, f"I'll take up to {_count(limits.member_commands, 'command')} a minute from each "
                    f"member and {limits.guild_commands:g} from the whole server.")


async def setup(bot: VoxcordBot) -> None:
    await bot.add_cog(UsageCog(bot))
    add_admin_commands(bot, UsageAdmin(bot))
