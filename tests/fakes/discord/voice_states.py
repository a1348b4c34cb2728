"""Voice states on the main gateway: op 4 from the bot, VOICE_STATE_UPDATE / VOICE_SERVER_UPDATE out.

The voice media server itself (voice WebSocket, UDP, DAVE) lives in ``tests/fakes/voice``; this
module only needs the small ``VoiceServerLike`` surface to hand discord.py an endpoint and token.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any, Protocol

from . import payloads
from .model import VoiceState

if TYPE_CHECKING:
    from .gateway import GatewaySession
    from .server import FakeDiscord

Json = dict[str, Any]


class VoiceServerLike(Protocol):
    endpoint: str  # "127.0.0.1:PORT"; discord.py dials wss://{endpoint}/?v=8

    def open_session(self, *, guild_id: int, channel_id: int, user_id: int, session_id: str) -> str: ...

    def close_session(self, guild_id: int) -> None: ...


class VoiceStates:
    def __init__(self, fake: FakeDiscord, voice_server: VoiceServerLike | None = None) -> None:
        self._fake = fake
        self.server = voice_server
        self.server_updates: list[Json] = []  # every VOICE_SERVER_UPDATE sent

    async def set_state(
        self, guild_id: int, user_id: int, channel_id: int | None, *, self_mute: bool = False,
        self_deaf: bool = False, session_id: str | None = None,
    ) -> VoiceState:
        """Move a user (or the bot) and tell the bot with VOICE_STATE_UPDATE."""
        guild = self._fake.guilds[guild_id]
        if channel_id is not None and channel_id not in guild.channels:
            raise KeyError(f"channel {channel_id} is not in guild {guild_id}")
        previous = guild.voice_states.get(user_id)
        state = VoiceState(
            user_id=user_id, channel_id=channel_id,
            session_id=session_id or (previous.session_id if previous else secrets.token_hex(16)),
            self_mute=self_mute, self_deaf=self_deaf,
        )
        if channel_id is None:
            guild.voice_states.pop(user_id, None)
        else:
            guild.voice_states[user_id] = state
        await self._fake.gateway.dispatch("VOICE_STATE_UPDATE", payloads.voice_state(guild, state),
                                          guild_id=guild_id)
        return state

    async def move_voice_server(self, guild_id: int) -> None:
        """Discord moves the bot's call to another voice server: VOICE_SERVER_UPDATE with a new
        token and the media server's current endpoint, nothing on the bot's voice state."""
        assert self.server is not None, "no voice server attached"
        guild = self._fake.guilds[guild_id]
        state = guild.voice_states[self._fake.bot_user.id]
        assert state.channel_id is not None, "the bot is not in voice"
        token = self.server.open_session(guild_id=guild_id, channel_id=state.channel_id,
                                         user_id=self._fake.bot_user.id, session_id=state.session_id)
        update = {"token": token, "guild_id": str(guild_id), "endpoint": self.server.endpoint}
        self.server_updates.append(update)
        await self._fake.gateway.dispatch("VOICE_SERVER_UPDATE", update, guild_id=guild_id)

    async def on_bot_voice_state(self, session: GatewaySession, data: Json) -> None:
        """Op 4: Discord answers with the bot's voice state, then the voice server for the join."""
        guild_id = int(data["guild_id"])
        channel_id = None if data.get("channel_id") is None else int(data["channel_id"])
        bot_id = self._fake.bot_user.id
        guild = self._fake.guilds.get(guild_id)
        if guild is None:
            return
        was_in = guild.voice_states.get(bot_id)
        # Discord uses the gateway session id as the voice session id.
        await self.set_state(guild_id, bot_id, channel_id, self_mute=bool(data.get("self_mute")),
                             self_deaf=bool(data.get("self_deaf")), session_id=session.session_id)
        if self.server is not None and was_in is not None and was_in.channel_id != channel_id:
            self.server.close_session(guild_id)
        if channel_id is None:
            return
        if self.server is None:
            # No media server attached: Discord's "endpoint not yet allocated" shape; discord.py waits.
            token, endpoint = secrets.token_hex(8), None
        else:
            token = self.server.open_session(guild_id=guild_id, channel_id=channel_id, user_id=bot_id,
                                             session_id=session.session_id)
            endpoint = self.server.endpoint
        update = {"token": token, "guild_id": str(guild_id), "endpoint": endpoint}
        self.server_updates.append(update)
        await self._fake.gateway.dispatch("VOICE_SERVER_UPDATE", update, guild_id=guild_id)
