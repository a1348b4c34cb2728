"""/privacy: each member's recording choice, export and erasure; /admin privacy: the server's consent
mode and retention."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.interactions import reply
from bot.services.privacy import OPT_IN, OPT_OUT
from bot.store.models import ConsentMode
from cogs.admin import AdminCommands, add_admin_commands

if TYPE_CHECKING:
    from bot.app import VoxcordBot
    from bot.services.privacy import CaptionsErased, ConsentStatus, PrivacyService

CONSENT_MODES = {
    OPT_OUT: "everyone in the voice channel is heard unless they use /privacy optout",
    OPT_IN: "nobody is heard until they use /privacy optin",
}


def turns(count: int) -> str:
    return f"{count} turn" if count == 1 else f"{count} turns"


def messages(count: int) -> str:
    return f"{count} caption message" if count == 1 else f"{count} caption messages"


def captions_removed(erased: CaptionsErased) -> str:
    """What forget-me did to the caption messages holding the member's lines ("" if none)."""
    parts = []
    if erased.edited:
        parts.append(f"removed your lines (and my answers to you) from {messages(erased.edited)}")
    if erased.deleted:
        parts.append(f"{messages(erased.deleted)} with your lines {'is' if erased.deleted == 1 else 'are'} "
                     "gone entirely")
    text = f" Captions: {' and '.join(parts)}." if parts else ""
    if erased.pending:
        text += (f" {messages(erased.pending).capitalize()} with your lines could not be changed yet (Discord "
                 "refused or is slow); I retry within the hour.")
    return text


def describe_status(status: ConsentStatus) -> str:
    if status.heard:
        return "I hear you in this server's voice channels. `/privacy optout` stops that."
    if status.choice is None:
        return ("This server only lets me hear members who opted in, so I don't hear you. "
                "`/privacy optin` if you want to talk with me.")
    return ("I don't hear you: your audio is dropped before it is even decoded. "
            "`/privacy optin` if you change your mind.")


def service(bot: VoxcordBot) -> PrivacyService:
    if bot.privacy is None:
        raise RuntimeError("the privacy service was not injected into the bot")
    return bot.privacy


@app_commands.guild_only()
class PrivacyCog(commands.GroupCog, group_name="privacy"):
    """Your recording choices and what the bot keeps about you."""

    def __init__(self, bot: VoxcordBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="optout")
    async def optout(self, interaction: discord.Interaction) -> None:
        """Stop the bot from hearing you in this server (your audio is never decoded or sent)."""
        assert interaction.guild_id is not None
        status = await service(self.bot).opt_out(interaction.guild_id, interaction.user.id)
        await reply(interaction, "Opted out. " + describe_status(status))

    @app_commands.command(name="optin")
    async def optin(self, interaction: discord.Interaction) -> None:
        """Let the bot hear you in this server again."""
        assert interaction.guild_id is not None
        status = await service(self.bot).opt_in(interaction.guild_id, interaction.user.id)
        await reply(interaction, "Opted in. " + describe_status(status))

    @app_commands.command(name="status")
    async def status(self, interaction: discord.Interaction) -> None:
        """Show whether the bot hears you in this server."""
        assert interaction.guild_id is not None
        status = await service(self.bot).status(interaction.guild_id, interaction.user.id)
        await reply(interaction, describe_status(status))

    @app_commands.command(name="forget-me")
    @app_commands.describe(forget_choice="Also forget your opt-in/opt-out choice (back to the server default).")
    async def forget_me(self, interaction: discord.Interaction, forget_choice: bool = False) -> None:
        """Delete everything you said that the bot kept in this server."""
        assert interaction.guild_id is not None
        forgotten = await service(self.bot).forget(
            interaction.guild_id, interaction.user.id, forget_choice=forget_choice)
        message = f"Deleted {turns(forgotten.turns)} of yours from this server's history." + captions_removed(
            forgotten.captions)
        if forgotten.choice_removed:
            message += " Your opt-in/opt-out choice is forgotten too; " + (
                "with this server's default I now hear you (`/privacy optout` to stop that)."
                if forgotten.heard_now else "with this server's default I don't hear you.")
        await reply(interaction, message)

    @app_commands.command(name="export")
    async def export(self, interaction: discord.Interaction) -> None:
        """Get a file (JSON) of everything you said that the bot kept in this server; only you see it."""
        assert interaction.guild_id is not None
        limit = interaction.guild.filesize_limit if interaction.guild else None
        count, data = await service(self.bot).export(interaction.guild_id, interaction.user.id, limit_bytes=limit)
        if count == 0:
            await reply(interaction, "I have no stored text from you in this server.")
            return
        file = discord.File(io.BytesIO(data), filename=f"voxcord-{interaction.guild_id}-{interaction.user.id}.json")
        await reply(interaction, f"Your {turns(count)} stored in this server (no audio is ever stored).", file=file)


class PrivacyAdmin(AdminCommands):
    def __init__(self, bot: VoxcordBot) -> None:
        super().__init__(bot, name="privacy", description="Who the bot hears here, and how long it keeps text.")

    @app_commands.command(name="consent-mode")
    @app_commands.describe(mode="opt_out: everyone heard unless they opt out; opt_in: nobody until they opt in.")
    async def consent_mode(self, interaction: discord.Interaction, mode: ConsentMode) -> None:
        """Choose whether members are heard by default or only after opting in."""
        assert interaction.guild_id is not None
        # Answered after the reply was deferred: a changed mode re-posts the notice when in voice.
        await service(self.bot).set_consent_mode(interaction.guild_id, mode)
        await reply(interaction, f"Consent mode is now `{mode}`: {CONSENT_MODES[mode]}.")

    @app_commands.command(name="retention")
    @app_commands.describe(days="How many days conversation text is kept (1 to 3650).")
    async def retention(self, interaction: discord.Interaction, days: app_commands.Range[int, 1, 3650]) -> None:
        """Set how long this server's conversation text is kept; older text is deleted."""
        assert interaction.guild_id is not None
        removed = await service(self.bot).set_retention(interaction.guild_id, days)
        await reply(interaction, f"Conversation text is now kept for {days} days; {turns(removed)} older than "
                    "that deleted now.")


async def setup(bot: VoxcordBot) -> None:
    await bot.add_cog(PrivacyCog(bot))
    add_admin_commands(bot, PrivacyAdmin(bot))
