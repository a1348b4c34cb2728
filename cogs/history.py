"""/history show and /admin history clear: what the bot remembers of this server's conversation."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.interactions import reply
from cogs.admin import AdminCommands, add_admin_commands

if TYPE_CHECKING:
    from bot.app import VoxcordBot
    from bot.store import Turn

# Discord refuses message content over 2000 characters.
MESSAGE_LIMIT = 1900


def format_turns(turns: list[Turn]) -> str:
    lines = []
    for turn in turns:
        who = "Voxcord" if turn.role == "assistant" else turn.speaker_name
        marks = " (interrupted)" if turn.interrupted else ""
        marks += " (not addressed to me)" if turn.role == "context" else ""
        lines.append(f"**{discord.utils.escape_markdown(who)}**{marks}: {discord.utils.escape_markdown(turn.text)}")
    text = "\n".join(lines)
    while len(text) > MESSAGE_LIMIT and lines:
        lines.pop(0)  # keep the newest turns when the message would be too long
        text = "…\n" + "\n".join(lines)
    return text


@app_commands.guild_only()
class HistoryCog(commands.GroupCog, group_name="history"):
    """The conversation the bot remembers."""

    def __init__(self, bot: VoxcordBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="show")
    async def show(self, interaction: discord.Interaction) -> None:
        """Show the last turns of this server's conversation (only you see it)."""
        assert interaction.guild_id is not None
        turns = await self.bot.history.recent(interaction.guild_id)
        await reply(interaction, format_turns(turns) if turns else "No conversation yet.")


class HistoryAdmin(AdminCommands):
    def __init__(self, bot: VoxcordBot) -> None:
        super().__init__(bot, name="history", description="The conversation the bot remembers in this server.")

    @app_commands.command(name="clear")
    async def clear(self, interaction: discord.Interaction) -> None:
        """Delete this server's whole conversation history."""
        assert interaction.guild_id is not None
        removed = await self.bot.history.clear(interaction.guild_id)
        await reply(interaction, f"Cleared {removed} turns of history.")


async def setup(bot: VoxcordBot) -> None:
    await bot.add_cog(HistoryCog(bot))
    add_admin_commands(bot, HistoryAdmin(bot))
