"""/privacy: each member's recording choice, export and erasure; the server's consent and retention."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

if TYPE_CHECKING:
    from bot.app import VoxcordBot
    from bot.services.privacy import ConsentStatus, PrivacyService

CONSENT_MODES = {
    "opt_out": "everyone in the voice channel is heard unless they use /privacy optout",
    "opt_in": "nobody is heard until they use /privacy optin",
}


def turns(count: int) -> str:
    return f"{count} turn" if count == 1 else f"{count} turns"


def describe_status(status: ConsentStatus) -> str:
    if status.heard:
        return "I hear you in this server's voice channels. `/privacy optout` stops that."
    if status.choice is None:
        return ("This server only lets me hear members who opted in, so I don't hear you. "
                "`/privacy optin` if you want to talk with me.")
    return ("I don't hear you: your audio is dropped before it is even decoded. "
            "`/privacy optin` if you change your mind.")


@app_commands.guild_only()
class PrivacyCog(commands.GroupCog, group_name="privacy"):
    """Your recording choices and what the bot keeps about you."""

    def __init__(self, bot: VoxcordBot) -> None:
        self.bot = bot
        super().__init__()

    @property
    def service(self) -> PrivacyService:
        if self.bot.privacy is None:
            raise RuntimeError("the privacy service was not injected into the bot")
        return self.bot.privacy

    @app_commands.command(name="optout")
    async def optout(self, interaction: discord.Interaction) -> None:
        """Stop the bot from hearing you in this server (your audio is never decoded or sent)."""
        assert interaction.guild_id is not None
        status = await self.service.opt_out(interaction.guild_id, interaction.user.id)
        await interaction.response.send_message(
            "Opted out. " + describe_status(status), ephemeral=True)

    @app_commands.command(name="optin")
    async def optin(self, interaction: discord.Interaction) -> None:
        """Let the bot hear you in this server again."""
        assert interaction.guild_id is not None
        status = await self.service.opt_in(interaction.guild_id, interaction.user.id)
        await interaction.response.send_message("Opted in. " + describe_status(status), ephemeral=True)

    @app_commands.command(name="status")
    async def status(self, interaction: discord.Interaction) -> None:
        """Show whether the bot hears you in this server."""
        assert interaction.guild_id is not None
        status = await self.service.status(interaction.guild_id, interaction.user.id)
        await interaction.response.send_message(describe_status(status), ephemeral=True)

    @app_commands.command(name="forget-me")
    @app_commands.describe(forget_choice="Also forget your opt-in/opt-out choice (back to the server default).")
    async def forget_me(self, interaction: discord.Interaction, forget_choice: bool = False) -> None:
        """Delete everything you said that the bot kept in this server."""
        assert interaction.guild_id is not None
        forgotten = await self.service.forget(
            interaction.guild_id, interaction.user.id, forget_choice=forget_choice)
        message = f"Deleted {turns(forgotten.turns)} of yours from this server's history."
        if forgotten.choice_removed:
            message += " Your opt-in/opt-out choice is forgotten too; " + (
                "with this server's default I now hear you (`/privacy optout` to stop that)."
                if forgotten.heard_now else "with this server's default I don't hear you.")
        await interaction.response.send_message(message, ephemeral=True)

    @app_commands.command(name="export")
    async def export(self, interaction: discord.Interaction) -> None:
        """Get a file (JSON) of everything you said that the bot kept in this server; only you see it."""
        assert interaction.guild_id is not None
        limit = interaction.guild.filesize_limit if interaction.guild else None
        count, data = await self.service.export(interaction.guild_id, interaction.user.id, limit_bytes=limit)
        if count == 0:
            await interaction.response.send_message("I have no stored text from you in this server.", ephemeral=True)
            return
        file = discord.File(io.BytesIO(data), filename=f"voxcord-{interaction.guild_id}-{interaction.user.id}.json")
        await interaction.response.send_message(
            f"Your {turns(count)} stored in this server (no audio is ever stored).", file=file, ephemeral=True)

    @app_commands.command(name="consent-mode")
    @app_commands.describe(mode="opt_out: everyone heard unless they opt out; opt_in: nobody until they opt in.")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def consent_mode(self, interaction: discord.Interaction, mode: Literal["opt_out", "opt_in"]) -> None:
        """Choose whether members are heard by default or only after opting in."""
        assert interaction.guild_id is not None
        # The interaction is answered first: a changed mode re-posts the notice when in voice.
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.service.set_consent_mode(interaction.guild_id, mode)
        await interaction.followup.send(f"Consent mode is now `{mode}`: {CONSENT_MODES[mode]}.", ephemeral=True)

    @app_commands.command(name="retention")
    @app_commands.describe(days="How many days conversation text is kept (1 to 3650).")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def retention(self, interaction: discord.Interaction, days: app_commands.Range[int, 1, 3650]) -> None:
        """Set how long this server's conversation text is kept; older text is deleted."""
        assert interaction.guild_id is not None
        removed = await self.service.set_retention(interaction.guild_id, days)
        await interaction.response.send_message(
            f"Conversation text is now kept for {days} days; {turns(removed)} older than that deleted now.",
            ephemeral=True)


async def setup(bot: VoxcordBot) -> None:
    await bot.add_cog(PrivacyCog(bot))
