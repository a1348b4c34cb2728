"""Per-guild voice sessions: joining, moving and leaving voice channels.

One session per guild; everything the bot holds for a guild's voice (the connection, and the
listening/answering loop once attached) is released by ``leave``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import discord

from bot.errors import (
    BusyElsewhereError,
    MissingVoicePermissionsError,
    NotConnectedError,
    NotInVoiceError,
)

log = logging.getLogger(__name__)

# Called after a guild's voice connection is up, and before it is torn down; the answering
# loop hooks in here without this module knowing about it.
SessionHook = Callable[["VoiceSession"], Awaitable[None]]


@dataclass(slots=True)
class VoiceSession:
    guild_id: int
    channel_id: int
    voice_client: discord.VoiceClient
    text_channel_id: int | None = None
    extras: dict[str, object] = field(default_factory=dict)


class VoiceSessions:
    def __init__(
        self,
        *,
        voice_client_cls: type[discord.VoiceClient] = discord.VoiceClient,
        connect_timeout: float = 30.0,
        on_start: SessionHook | None = None,
        on_stop: SessionHook | None = None,
    ) -> None:
        self._voice_client_cls = voice_client_cls
        self._connect_timeout = connect_timeout
        self._on_start = on_start
        self._on_stop = on_stop
        self._sessions: dict[int, VoiceSession] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._forgetting: set[asyncio.Task[None]] = set()

    def get(self, guild_id: int) -> VoiceSession | None:
        return self._sessions.get(guild_id)

    def __len__(self) -> int:
        return len(self._sessions)

    def _lock(self, guild_id: int) -> asyncio.Lock:
        return self._locks.setdefault(guild_id, asyncio.Lock())

    @staticmethod
    def target_channel(member: discord.Member | discord.User) -> discord.VoiceChannel | discord.StageChannel:
        voice = member.voice if isinstance(member, discord.Member) else None
        if voice is None or not isinstance(voice.channel, discord.VoiceChannel | discord.StageChannel):
            raise NotInVoiceError("Join a voice channel first, then use /join.")
        return voice.channel

    @staticmethod
    def check_permissions(channel: discord.VoiceChannel | discord.StageChannel) -> None:
        me = channel.guild.me
        perms = channel.permissions_for(me)
        missing = [name for name, ok in (("View Channel", perms.view_channel),
                                         ("Connect", perms.connect), ("Speak", perms.speak)) if not ok]
        if missing:
            raise MissingVoicePermissionsError(
                f"I can't work in {channel.mention}: I'm missing the {' and '.join(missing)} "
                "permission there. Ask an admin to grant it, or pick another channel."
            )

    async def join(
        self,
        channel: discord.VoiceChannel | discord.StageChannel,
        *,
        text_channel_id: int | None = None,
        move: bool = False,
    ) -> VoiceSession:
        """Connect to ``channel``; refuses to leave another channel unless ``move`` is set."""
        guild = channel.guild
        self.check_permissions(channel)
        async with self._lock(guild.id):
            current = self._sessions.get(guild.id)
            if current is not None and current.voice_client.is_connected():
                if current.channel_id == channel.id:
                    return current
                if not move:
                    raise BusyElsewhereError(
                        f"I'm already talking in <#{current.channel_id}>. Move me here?",
                        current_channel_id=current.channel_id,
                        requested_channel_id=channel.id,
                    )
                await current.voice_client.move_to(channel)
                current.channel_id = channel.id
                return current
            if current is not None:
                await self._teardown(current)
            voice_client = await channel.connect(
                cls=self._voice_client_cls, timeout=self._connect_timeout, reconnect=True, self_deaf=False
            )
            session = VoiceSession(
                guild_id=guild.id, channel_id=channel.id, voice_client=voice_client,
                text_channel_id=text_channel_id,
            )
            self._sessions[guild.id] = session
            add_close_callback = getattr(voice_client, "add_close_callback", None)
            if add_close_callback is not None:
                add_close_callback(lambda: self._closed_elsewhere(guild.id, voice_client))
            if self._on_start is not None:
                try:
                    await self._on_start(session)
                except BaseException:
                    # Not listening (e.g. the privacy notice could not be posted): not staying either.
                    await self._teardown(session)
                    raise
            log.info("Joined voice channel %s in guild %s", channel.id, guild.id)
            return session

    async def leave(self, guild_id: int) -> None:
        async with self._lock(guild_id):
            session = self._sessions.get(guild_id)
            if session is None:
                raise NotConnectedError("I'm not in a voice channel here.")
            await self._teardown(session)

    def channel_changed(self, guild_id: int, channel_id: int) -> None:
        """Someone moved the bot to another voice channel; the connection follows by itself."""
        session = self._sessions.get(guild_id)
        if session is not None:
            session.channel_id = channel_id

    def _closed_elsewhere(self, guild_id: int, voice_client: discord.VoiceClient) -> None:
        # Discord ended the connection (kicked, channel deleted, reconnect gave up): release the
        # guild's listening and answering too, or they would live on with no connection.
        task = asyncio.get_running_loop().create_task(self._forget(guild_id, voice_client), name="voice-forget")
        self._forgetting.add(task)
        task.add_done_callback(self._forgetting.discard)

    async def _forget(self, guild_id: int, voice_client: discord.VoiceClient) -> None:
        async with self._lock(guild_id):
            session = self._sessions.get(guild_id)
            if session is not None and session.voice_client is voice_client:
                log.info("Voice connection in guild %s ended by Discord; releasing the session", guild_id)
                await self._teardown(session, disconnect=False)

    async def leave_all(self) -> None:
        for guild_id in list(self._sessions):
            async with self._lock(guild_id):
                session = self._sessions.get(guild_id)
                if session is not None:
                    await self._teardown(session)

    async def _teardown(self, session: VoiceSession, *, disconnect: bool = True) -> None:
        self._sessions.pop(session.guild_id, None)
        try:
            if self._on_stop is not None:
                await self._on_stop(session)
        finally:
            # Not after discord.py closed it itself: a second disconnect waits up to its 30 s
            # timeout for a confirmation that never comes, holding the guild's lock.
            if disconnect:
                await session.voice_client.disconnect(force=True)
            log.info("Left voice in guild %s", session.guild_id)
