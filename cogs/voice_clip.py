"""/voice show and /admin voice set|reset: the guild's reference voice, cloned for every spoken reply."""

from __future__ import annotations

import datetime as dt
import io
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.audio.clip import NormalisedClip
from bot.interactions import reply
from bot.services.clips import ClipUpload
from cogs.admin import AdminCommands, add_admin_commands

if TYPE_CHECKING:
    from bot.app import VoxcordBot

log = logging.getLogger(__name__)

CONSENT_ID = "voxcord:voice-consent"
CANCEL_ID = "voxcord:voice-cancel"
CONSENT_LABEL = "The speaker agreed to have their voice cloned"
CONSENT_TIMEOUT_SECONDS = 300.0


NO_VOICE = "No voice is set: I speak with the default voice. An admin can set one with /admin voice set."


def _when(clip_time: dt.datetime) -> str:
    return discord.utils.format_dt(clip_time, "f")


class VoiceConsentView(discord.ui.View):
    """The clip is stored only when the admin who uploaded it confirms the speaker's consent.

    The checked clip waits here, in memory, and nowhere else; Cancel or the timeout drops it.
    The confirmation message never carries the audio (only /voice show in its guild does).
    """

    def __init__(self, bot: VoxcordBot, *, guild_id: int, requester_id: int, filename: str,
                 clip: NormalisedClip) -> None:
        super().__init__(timeout=CONSENT_TIMEOUT_SECONDS)
        self._bot = bot
        self._guild_id = guild_id
        self._requester_id = requester_id
        self._filename = filename
        self._clip: NormalisedClip | None = clip
        self.message: discord.WebhookMessage | None = None

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        permissions = interaction.permissions
        if interaction.user.id != self._requester_id or not permissions.manage_guild:
            await interaction.response.send_message(
                "Only the admin who ran /admin voice set can confirm or cancel this.", ephemeral=True)
            return False
        return True

    @discord.ui.button(label=CONSENT_LABEL, style=discord.ButtonStyle.success, custom_id=CONSENT_ID)
    async def consent(self, interaction: discord.Interaction, _button: discord.ui.Button[VoiceConsentView]) -> None:
        clip, self._clip = self._clip, None
        self.stop()
        if clip is None:  # a second click that raced the first
            return
        # Acknowledged before the database write, which can take longer than Discord's 3 s.
        await interaction.response.defer()
        stored = await self._bot.clips.store(self._guild_id, clip, set_by_id=interaction.user.id,
                                             set_by_name=interaction.user.display_name)
        await interaction.edit_original_response(
            content=f"Voice set: {stored.duration_s:.1f} s of audio from "
            f"**{discord.utils.escape_markdown(self._filename)}**, set by {interaction.user.mention} on "
            f"{_when(stored.set_at)}, who confirmed the speaker agreed. I'll speak with it from now on.",
            view=None,
        )

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary, custom_id=CANCEL_ID)
    async def cancel(self, interaction: discord.Interaction, _button: discord.ui.Button[VoiceConsentView]) -> None:
        self._clip = None
        self.stop()
        await interaction.response.edit_message(content="Cancelled: the clip was not stored.", view=None)

    async def on_timeout(self) -> None:
        self._clip = None
        if self.message is not None:
            try:
                await self.message.edit(content="No confirmation came, so the clip was not stored.", view=None)
            except discord.HTTPException:
                log.info("Could not mark the voice consent prompt in guild %s as expired", self._guild_id)


@app_commands.guild_only()
class VoiceClipCog(commands.GroupCog, group_name="voice"):
    """The server's speaking voice."""

    def __init__(self, bot: VoxcordBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="show")
    async def show_voice(self, interaction: discord.Interaction) -> None:
        """Show the voice clip this server uses, who set it and when."""
        assert interaction.guild_id is not None
        stored = await self.bot.clips.get(interaction.guild_id)
        if stored is None:
            await reply(interaction, NO_VOICE)
            return
        about = (f"This server's voice: {stored.duration_s:.1f} s, set by {stored.set_by_name} "
                 f"(<@{stored.set_by_id}>) on {_when(stored.set_at)}.")
        if not interaction.permissions.manage_guild:
            # The clip is someone's recorded voice: only the admins who manage it get the file.
            await reply(interaction, about + " Members with Manage Server can download the clip.")
            return
        await reply(interaction, about, file=discord.File(io.BytesIO(stored.audio), filename="voice.wav"))


class VoiceAdmin(AdminCommands):
    """/admin voice set|reset."""

    def __init__(self, bot: VoxcordBot) -> None:
        super().__init__(bot, name="voice", description="The voice the bot speaks with in this server.")

    @app_commands.command(name="set")
    @app_commands.describe(clip="An audio clip (10–30 s of one person speaking clearly) to clone.")
    async def set_voice(self, interaction: discord.Interaction, clip: discord.Attachment) -> None:
        """Set the voice the bot speaks with, cloned from an audio clip (the speaker must agree)."""
        assert interaction.guild_id is not None
        # Checked before asking for consent, so a bad clip is refused before anyone confirms.
        checked = await self.bot.clips.check(ClipUpload(url=clip.url, filename=clip.filename, declared_size=clip.size))
        view = VoiceConsentView(self.bot, guild_id=interaction.guild_id, requester_id=interaction.user.id,
                                filename=clip.filename, clip=checked)
        view.message = await reply(
            interaction,
            f"**{discord.utils.escape_markdown(clip.filename)}** is usable: {checked.duration_s:.1f} s of speech "
            f"(sha256 `{checked.sha256[:12]}`). Cloning someone's voice needs their permission: confirm only if "
            "the person speaking in this clip agreed to have their voice cloned by this bot. "
            "Nothing is stored until you confirm.",
            view=view,
        )

    @app_commands.command(name="reset")
    async def reset_voice(self, interaction: discord.Interaction) -> None:
        """Forget the voice clip and go back to the default voice."""
        assert interaction.guild_id is not None
        removed = await self.bot.clips.reset(interaction.guild_id)
        await reply(interaction, "Voice clip deleted; I'll use the default voice." if removed
                    else "No voice clip was set; I already use the default voice.")


async def setup(bot: VoxcordBot) -> None:
    await bot.add_cog(VoiceClipCog(bot))
    add_admin_commands(bot, VoiceAdmin(bot))
