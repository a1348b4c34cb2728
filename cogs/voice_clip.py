"""/voice set|show|reset: the guild's reference voice, cloned for every spoken reply."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.clips import ClipUpload

if TYPE_CHECKING:
    from bot.app import VoxcordBot


def _when(clip_time: object) -> str:
    return discord.utils.format_dt(clip_time, "f") if hasattr(clip_time, "timestamp") else str(clip_time)


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
        """Set the voice the bot speaks with, cloned from an audio clip."""
        assert interaction.guild_id is not None
        # Downloading and decoding the clip can take a few seconds.
        await interaction.response.defer(ephemeral=True, thinking=True)
        upload = ClipUpload(url=clip.url, filename=clip.filename, declared_size=clip.size)
        stored = await self.bot.clips.set_from_upload(
            interaction.guild_id, upload,
            set_by_id=interaction.user.id, set_by_name=interaction.user.display_name,
        )
        await interaction.followup.send(
            f"Voice set: {stored.duration_s:.1f} s of audio from **{discord.utils.escape_markdown(clip.filename)}**, "
            f"set by {interaction.user.mention} on {_when(stored.set_at)}. I'll speak with it from now on.",
            ephemeral=True,
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
