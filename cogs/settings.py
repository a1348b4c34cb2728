"""/settings show and /admin settings ...: how the bot behaves in this server."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.interactions import reply
from bot.store.models import AddressingMode
from cogs.admin import AdminCommands, add_admin_commands

if TYPE_CHECKING:
    from bot.app import VoxcordBot
    from bot.store import GuildSettings

MODES: dict[str, str] = {
    "auto": "answers everything when one person is in the channel, only when addressed by name when there are more",
    "always": "answers everything it hears",
    "wake_word": "answers only when addressed by name or wake word",
}


def describe(settings: GuildSettings, bot_name: str) -> str:
    wake = settings.wake_word or bot_name
    notices = f"<#{settings.text_channel_id}>" if settings.text_channel_id else "where /join was used"
    autojoin = f"when someone enters <#{settings.autojoin_channel_id}>" if settings.autojoin_channel_id else "off"
    lines = [
        f"**Addressing:** `{settings.addressing_mode}`: {MODES[settings.addressing_mode]}.",
        f"**Wake word:** {discord.utils.escape_markdown(wake)}"
        + ("" if settings.wake_word else " (my display name)"),
        f"**Persona:** {discord.utils.escape_markdown(settings.persona) if settings.persona else 'default'}",
        f"**Text channel for notices:** {notices}",
        f"**Joins by itself:** {autojoin}",
        f"**History kept for:** {settings.retention_days} days",
    ]
    return "\n".join(lines)


def bot_name(interaction: discord.Interaction) -> str:
    me = interaction.guild.me if interaction.guild else None
    return me.display_name if me else "Voxcord"


@app_commands.guild_only()
class SettingsCog(commands.GroupCog, group_name="settings"):
    """How the bot behaves in this server."""

    def __init__(self, bot: VoxcordBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="show")
    async def show(self, interaction: discord.Interaction) -> None:
        """Show this server's settings."""
        assert interaction.guild_id is not None
        settings = await self.bot.server_settings.get(interaction.guild_id)
        await reply(interaction, describe(settings, bot_name(interaction)))


class SettingsAdmin(AdminCommands):
    def __init__(self, bot: VoxcordBot) -> None:
        super().__init__(bot, name="settings", description="How the bot behaves in this server.")

    @app_commands.command(name="addressing")
    @app_commands.describe(mode="auto: addressed by name only when several people talk; always; wake_word.")
    async def addressing(self, interaction: discord.Interaction, mode: AddressingMode) -> None:
        """Choose when the bot answers what it hears."""
        assert interaction.guild_id is not None
        await self.bot.server_settings.set_addressing(interaction.guild_id, mode)
        await reply(interaction, f"Addressing is now `{mode}`: {MODES[mode]}.")

    @app_commands.command(name="wake-word")
    @app_commands.describe(word="The word that addresses the bot; leave empty to use its display name.")
    async def wake_word(self, interaction: discord.Interaction, word: str | None = None) -> None:
        """Set the word that addresses the bot (its display name by default)."""
        assert interaction.guild_id is not None
        cleaned = await self.bot.server_settings.set_wake_word(interaction.guild_id, word)
        shown = discord.utils.escape_markdown(cleaned or bot_name(interaction))
        await reply(interaction, f"Wake word is now **{shown}**.")

    @app_commands.command(name="persona")
    @app_commands.describe(text="How the bot should behave, e.g. 'A cheerful pirate'. Leave empty to reset.")
    async def persona(self, interaction: discord.Interaction, text: str | None = None) -> None:
        """Give the bot a persona (added to its instructions), or reset it."""
        assert interaction.guild_id is not None
        cleaned = await self.bot.server_settings.set_persona(interaction.guild_id, text)
        await reply(interaction, "Persona updated." if cleaned else "Persona reset to the default.")

    @app_commands.command(name="text-channel")
    @app_commands.describe(channel="Where the bot posts notices; leave empty to use the channel /join was used in.")
    async def text_channel(self, interaction: discord.Interaction, channel: discord.TextChannel | None = None) -> None:
        """Choose the text channel for the bot's notices."""
        assert interaction.guild_id is not None
        await self.bot.server_settings.set_text_channel(interaction.guild_id, channel.id if channel else None)
        where = channel.mention if channel else "the channel where /join is used"
        await reply(interaction, f"Notices will go to {where}.")

    @app_commands.command(name="autojoin")
    @app_commands.describe(channel="The voice channel to join when a member enters it; leave empty to turn it off.")
    async def autojoin(
        self, interaction: discord.Interaction, channel: discord.VoiceChannel | discord.StageChannel | None = None
    ) -> None:
        """Join a voice channel by itself whenever a member enters it (the privacy notice comes first)."""
        assert interaction.guild_id is not None
        await self.bot.server_settings.set_autojoin(interaction.guild_id, channel.id if channel else None)
        await reply(interaction, (
            f"I'll join {channel.mention} by myself when someone enters it, and post the privacy notice "
            "before I listen." if channel else "I'll join voice only when asked with /join."))


async def setup(bot: VoxcordBot) -> None:
    await bot.add_cog(SettingsCog(bot))
    add_admin_commands(bot, SettingsAdmin(bot))
