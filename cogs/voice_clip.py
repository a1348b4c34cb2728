"""/voice set|show|reset: the guild's reference voice, cloned for every spoken reply."""

from __future__ import annotations

import asyncio
import io
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.audio.clip import ClipRejected, NormalisedClip, normalise_clip
from bot.errors import ClipRefusedError
from bot.services.clips import ClipUpload
from bot.store.models import VoiceClip

if TYPE_CHECKING:
    from bot.app import VoxcordBot

log = logging.getLogger(__name__)

CONSENT_ID = "voxcord:voice-consent"
CANCEL_ID = "voxcord:voice-cancel"
CONSENT_LABEL = "The speaker agreed to have their voice cloned"
CONSENT_TIMEOUT_SECONDS = 300.0


def _when(clip_time: object) -> str:
    return discord.utils.format_dt(clip_time, "f") if hasattr(clip_time, "timestamp") else str(clip_time)


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
                "Only the admin who ran /voice set can confirm or cancel this.", ephemeral=True)
            return False
        return True

    @discord.ui.button(label=CONSENT_LABEL, style=discord.ButtonStyle.success, custom_id=CONSENT_ID)
    async def consent(self, interaction: discord.Interaction, _button: discord.ui.Button[VoiceConsentView]) -> None:
        clip, self._clip = self._clip, None
        self.stop()
        if clip is None:  # a second click that raced the first
            return
        stored = VoiceClip(
            guild_id=self._guild_id, audio=clip.wav, sample_rate=clip.sample_rate, duration_s=clip.duration_s,
            sha256=clip.sha256, source_format=clip.source_format, set_by_id=interaction.user.id,
            set_by_name=interaction.user.display_name, set_at=discord.utils.utcnow(),
        )
        await self._bot.database.clips.set(stored)
        # Who confirmed, when and which audio: the row keeps the same three facts.
        log.info("Guild %s voice clip stored after consent confirmed by %s (sha256 %s)",
                 self._guild_id, interaction.user.id, stored.sha256)
        await interaction.response.edit_message(
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

    @app_commands.command(name="set")
    @app_commands.describe(clip="An audio clip (10–30 s of one person speaking clearly) to clone.")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def set_voice(self, interaction: discord.Interaction, clip: discord.Attachment) -> None:
        """Set the voice the bot speaks with, cloned from an audio clip (the speaker must agree)."""
        assert interaction.guild_id is not None
        # Downloading and decoding the clip can take a few seconds.
        await interaction.response.defer(ephemeral=True, thinking=True)
        upload = ClipUpload(url=clip.url, filename=clip.filename, declared_size=clip.size)
        # Checked before asking for consent, so a bad clip is refused before anyone confirms.
        data = await self.bot.clips.download(upload)
        try:
            checked = await asyncio.to_thread(normalise_clip, data, self.bot.clips.limits)
        except ClipRejected as rejected:
            raise ClipRefusedError(rejected.reason) from None
        view = VoiceConsentView(self.bot, guild_id=interaction.guild_id, requester_id=interaction.user.id,
                                filename=clip.filename, clip=checked)
        view.message = await interaction.followup.send(
            f"**{discord.utils.escape_markdown(clip.filename)}** is usable: {checked.duration_s:.1f} s of speech "
            f"(sha256 `{checked.sha256[:12]}`). Cloning someone's voice needs their permission: confirm only if "
            "the person speaking in this clip agreed to have their voice cloned by this bot. "
            "Nothing is stored until you confirm.",
            view=view, ephemeral=True, wait=True,
        )

    @app_commands.command(name="show")
    async def show_voice(self, interaction: discord.Interaction) -> None:
        """Show the voice clip this server uses, who set it and when."""
        assert interaction.guild_id is not None
        await interaction.response.defer(ephemeral=True, thinking=True)
        stored = await self.bot.clips.get(interaction.guild_id)
        if stored is None:
            await interaction.followup.send(
                "No voice is set: I speak with the default voice. An admin can set one with /voice set.",
                ephemeral=True,
            )
            return
        file = discord.File(io.BytesIO(stored.audio), filename="voice.wav")
        await interaction.followup.send(
            f"This server's voice: {stored.duration_s:.1f} s, set by {stored.set_by_name} "
            f"(<@{stored.set_by_id}>) on {_when(stored.set_at)}.",
            file=file,
            ephemeral=True,
        )

    @app_commands.command(name="reset")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def reset_voice(self, interaction: discord.Interaction) -> None:
        """Forget the voice clip and go back to the default voice."""
        assert interaction.guild_id is not None
        removed = await self.bot.clips.reset(interaction.guild_id)
        message = ("Voice clip deleted; I'll use the default voice." if removed
                   else "No voice clip was set; I already use the default voice.")
        await interaction.response.send_message(message, ephemeral=True)


async def setup(bot: VoxcordBot) -> None:
    await bot.add_cog(VoiceClipCog(bot))
