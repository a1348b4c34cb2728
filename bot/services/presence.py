"""When the bot comes and goes by itself: it leaves a channel no human has been in for
``idle_leave_seconds``, and joins a guild's auto-join channel when a human enters it.

Fed every voice state change the gateway sends (the default Voice States intent); it reads only
discord.py's cache of who is in which channel, plus one settings read when someone enters a
channel while the bot is not in voice in that guild.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import discord

from bot.errors import UserFacingError

if TYPE_CHECKING:
    from bot.services.sessions import VoiceSession, VoiceSessions
    from bot.store import Database

log = logging.getLogger(__name__)


def humans_in(channel: object) -> int:
    members = getattr(channel, "members", None) or []
    return sum(1 for member in members if not member.bot)


class VoicePresence:
    def __init__(
        self, *, sessions: VoiceSessions, database: Database, idle_leave_seconds: float,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._sessions = sessions
        self._db = database
        self._idle = idle_leave_seconds
        self._sleep = sleep
        self._idle_timers: dict[int, asyncio.Task[None]] = {}

    async def on_voice_state_update(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        guild = member.guild
        self.check_idle(guild)
        channel = after.channel
        entered = channel is not None and (before.channel is None or before.channel.id != channel.id)
        if channel is not None and entered and not member.bot and self._sessions.get(guild.id) is None:
            await self._autojoin(guild, channel)

    def check_idle(self, guild: discord.Guild) -> None:
        """Start the idle countdown when the bot's channel has no human left; stop it when one is back."""
        session = self._sessions.get(guild.id)
        channel = guild.get_channel(session.channel_id) if session is not None else None
        if session is None or humans_in(channel):
            timer = self._idle_timers.pop(guild.id, None)
            if timer is not None:
                timer.cancel()
            return
        if guild.id not in self._idle_timers:
            self._idle_timers[guild.id] = asyncio.get_running_loop().create_task(
                self._leave_when_idle(guild.id, session), name=f"idle-leave-{guild.id}")

    async def close(self) -> None:
        tasks = list(self._idle_timers.values())
        self._idle_timers.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def _leave_when_idle(self, guild_id: int, session: VoiceSession) -> None:
        try:
            await self._sleep(self._idle)
        except asyncio.CancelledError:
            return
        if self._idle_timers.get(guild_id) is asyncio.current_task():
            del self._idle_timers[guild_id]
        if self._sessions.get(guild_id) is not session:
            return  # left or moved on meanwhile
        log.info("Guild %s: nobody in voice for %.0f s; leaving", guild_id, self._idle)
        with contextlib.suppress(UserFacingError):  # already gone
            await self._sessions.leave(guild_id)

    async def _autojoin(self, guild: discord.Guild, channel: discord.VoiceChannel | discord.StageChannel) -> None:
        settings = await self._db.guilds.get(guild.id)
        if settings.autojoin_channel_id != channel.id:
            return
        try:
            # The privacy notice is posted before listening starts, as for /join (the engine's hook).
            await self._sessions.join(channel, text_channel_id=settings.text_channel_id)
        except UserFacingError as refused:
            log.warning("Guild %s: could not join %s by itself: %s", guild.id, channel.id, refused.message)
        else:
            log.info("Guild %s: joined %s by itself (a member entered it)", guild.id, channel.id)
