"""/join and /leave: put the bot in the caller's voice channel and take it out again."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import BusyElsewhereError, UserFacingError
from bot.interactions import PUBLIC, reply

if TYPE_CHECKING:
    from bot.app import VoxcordBot


class MoveHereView(discord.ui.View):
    """Offered when the bot is busy in another channel of the guild: one click moves it."""

    def __init__(self, bot: VoxcordBot, requester_id: int, channel_id: int) -> None:
        super().__init__(timeout=60)
        self._bot = bot
        self._requester_id = requester_id
        self._channel_id = channel_id

    @discord.ui.button(label="Move here", style=discord.ButtonStyle.primary, custom_id="voxcord:move")
    async def move(self, interaction: discord.Interaction, _button: discord.ui.Button[MoveHereView]) -> None:
        if interaction.user.id != self._requester_id:
            await interaction.response.send_message("Only the member who asked can move me.", ephemeral=True)
            return
        channel = interaction.guild.get_channel(self._channel_id) if interaction.guild else None
        if not isinstance(channel, discord.VoiceChannel | discord.StageChannel):
            await interaction.response.send_message("That channel is gone.", ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            await self._bot.sessions.join(channel, text_channel_id=interaction.channel_id, move=True)
        except UserFacingError as error:
            await interaction.followup.send(error.message, ephemeral=True)
            return
        self.stop()
        await interaction.followup.send(f"Moved to {channel.mention}. I'm listening.", ephemeral=True)


class VoiceCog(commands.Cog):
    def __init__(self, bot: VoxcordBot) -> None:
        self.bot = bot

    # Public: the channel sees the bot arrive and go. The tree has deferred already: connecting
    # (voice gateway, UDP, DAVE handshake) can take longer than Discord's 3 s.
    @app_commands.command(name="join", extras=PUBLIC)
    @app_commands.guild_only()
    async def join(self, interaction: discord.Interaction) -> None:
        """Join your voice channel and start listening."""
        channel = self.bot.sessions.target_channel(interaction.user)
        try:
            await self.bot.sessions.join(channel, text_channel_id=interaction.channel_id)
        except BusyElsewhereError as busy:
            view = MoveHereView(self.bot, interaction.user.id, busy.requested_channel_id)
            await reply(interaction, busy.message, view=view)
            return
        await reply(interaction, f"Joined {channel.mention}. I'm listening.", ephemeral=False)

    @app_commands.command(name="leave", extras=PUBLIC)
    @app_commands.guild_only()
    async def leave(self, interaction: discord.Interaction) -> None:
        """Leave the voice channel and release everything held for this server."""
        assert interaction.guild_id is not None  # guild_only
        await self.bot.sessions.leave(interaction.guild_id)
        await reply(interaction, "Left the voice channel.", ephemeral=False)


async def setup(bot: VoxcordBot) -> None:
    await bot.add_cog(VoiceCog(bot))
