"""/status: is the bot listening here, and how fast have its recent turns been."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.interactions import reply

if TYPE_CHECKING:
    from bot.app import VoxcordBot

STAGE_LABELS = {
    "transcript_final": "end of speech → final transcript",
    "first_token": "→ first reply token",
    "first_sentence": "→ first sentence",
    "first_tts_audio": "→ first speech audio",
    "first_packet_sent": "→ first packet sent",
    "done": "→ reply finished",
}


class StatusCog(commands.Cog):
    def __init__(self, bot: VoxcordBot) -> None:
        self.bot = bot

    @app_commands.command(name="status")
    @app_commands.guild_only()
    async def status(self, interaction: discord.Interaction) -> None:
        """Show whether I'm listening here and how long my recent answers took, stage by stage."""
        assert interaction.guild_id is not None
        session = self.bot.sessions.get(interaction.guild_id)
        lines = [f"Listening in <#{session.channel_id}>." if session else "Not in a voice channel here."]
        log = self.bot.engine.timings(interaction.guild_id) if self.bot.engine else None
        if log is not None and len(log):
            lines.append(f"Last {len(log)} turns, from the end of your speech (median / p95):")
            for stage, summary in log.summary().items():
                if stage in STAGE_LABELS:
                    lines.append(f"- {STAGE_LABELS[stage]}: {summary.median_ms:.0f} / {summary.p95_ms:.0f} ms")
        else:
            lines.append("No turns timed yet.")
        if session is not None:
            stats = getattr(session.voice_client, "receive_stats", None)
            if stats is not None:
                snapshot = stats.snapshot()
                lines.append(
                    f"Audio: {snapshot.get('decoded', 0)} frames decoded, {snapshot.get('concealed', 0)} concealed, "
                    f"{snapshot.get('transport_failures', 0)} undecryptable packets dropped."
                )
        await reply(interaction, "\n".join(lines))


async def setup(bot: VoxcordBot) -> None:
    await bot.add_cog(StatusCog(bot))
