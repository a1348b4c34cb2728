"""A loopback Discord voice server: voice gateway v8 over TLS, UDP media, real DAVE groups.

The main fake gateway calls ``open_session`` when the bot sends opcode 4 and puts ``endpoint``
and the returned token into VOICE_SERVER_UPDATE. The bot then speaks to this server exactly as it
would to Discord (``wss://{endpoint}/?v=8``). One server holds many guilds; each guild's bot
connection has its own SSRC and transport key, and each channel its own DAVE group.

This module holds the server's sessions and channels, the scenario controls tests use, and the
UDP media; the voice websocket is ``gateway.VoiceGateway``'s, the per-guild state ``session.py``'s.
"""

from __future__ import annotations

import asyncio
import secrets
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

from aiohttp import web

from tests.fakes.tls import TestCertificates
from tests.fakes.voice.gateway import CLOSE_VOICE_SERVER_CRASHED, VoiceGateway
from tests.fakes.voice.group import Committer, DaveGroup
from tests.fakes.voice.recording import BotAudio
from tests.fakes.voice.rtp import ip_discovery_response, is_ip_discovery_request
from tests.fakes.voice.session import BotSession, VoiceChannel
from tests.fakes.voice.speaker import SimulatedSpeaker

# Discord stops relaying media to a UDP endpoint that has sent nothing for a while: hermes-agent's
# bot went deaf after ~60 s (PR #1418), py-cord's after 5-9 min (#3388). The shorter one here.
UDP_IDLE_TIMEOUT_S = 60.0
KEEPALIVE_BYTES = 8  # discord.js's keepalive datagram: a u32 LE counter in 8 bytes


class FakeVoiceServer(asyncio.DatagramProtocol):
    def __init__(self, certs: TestCertificates, *, committer: Committer = "simulated",
                 host: str = "127.0.0.1", udp_idle_timeout: float = UDP_IDLE_TIMEOUT_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``udp_idle_timeout``: media stops flowing to a bot whose UDP endpoint has sent nothing
        (no IP discovery, keepalive or audio) for this long, and flows again once it sends."""
        self._certs = certs
        self.udp_idle_timeout = udp_idle_timeout
        self.dave_relay_delay = 0.0  # see DaveGroup(relay_delay=...); read when a channel's group is made
        self._clock = clock
        self._host = host
        self.committer: Committer = committer
        self._sessions: dict[int, BotSession] = {}
        self._channels: dict[tuple[int, int], VoiceChannel] = {}
        self._by_addr: dict[tuple[str, int], BotSession] = {}
        self._ssrcs = iter(range(1000, 1 << 31, 7))
        self._runner: web.AppRunner | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._ws_port = 0
        self.udp_port = 0
        self.undecryptable: list[bytes] = []
        self._state_changed = asyncio.Condition()
        self._notifications: set[asyncio.Task[None]] = set()
        self._gateway = VoiceGateway(sessions=self._sessions, channel=self.channel,
                                     media=lambda: (self._host, self.udp_port), keyed=self._changed)

    # ----- lifecycle -----
    async def start(self) -> FakeVoiceServer:
        app = web.Application()
        app.router.add_get("/", self._gateway.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, 0, ssl_context=self._certs.server_context())
        await site.start()
        self._ws_port = self._runner.addresses[0][1]
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(self._host, 0))
        self.udp_port = self._udp.get_extra_info("sockname")[1]
        return self

    async def close(self) -> None:
        for channel in self._channels.values():
            for speaker in channel.speakers.values():
                await speaker.close()
            await channel.group.close()
        for session in self._sessions.values():
            if session.ws is not None:
                await session.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._udp is not None:
            self._udp.close()

    async def __aenter__(self) -> FakeVoiceServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def endpoint(self) -> str:
        return f"{self._host}:{self._ws_port}"

    # ----- VoiceServerLike: called by the main fake gateway -----
    def open_session(self, *, guild_id: int, channel_id: int, user_id: int, session_id: str) -> str:
        token = secrets.token_hex(16)
        old = self._sessions.get(guild_id)
        if old is not None and old.channel_id == channel_id and old.session_id == session_id:
            old.token = token  # same call, new server token: the bot re-identifies (a "move")
            return token
        if old is not None:
            self.close_session(guild_id)
        self._sessions[guild_id] = BotSession(guild_id, channel_id, user_id, session_id, token,
                                              next(self._ssrcs))
        self.channel(guild_id, channel_id)
        return token

    def close_session(self, guild_id: int) -> None:
        session = self._sessions.pop(guild_id, None)
        if session is None:
            return
        self.channel(guild_id, session.channel_id).group.bot_disconnected()
        if session.bot_addr is not None:
            self._by_addr.pop(session.bot_addr, None)
        if session.ws is not None and not session.ws.closed:
            task = asyncio.get_running_loop().create_task(session.ws.close(code=4014))
            self._notifications.add(task)
            task.add_done_callback(self._notifications.discard)

    # ----- scenario controls for tests -----
    def channel(self, guild_id: int, channel_id: int) -> VoiceChannel:
        key = (guild_id, channel_id)
        if key not in self._channels:
            self._channels[key] = VoiceChannel(guild_id, channel_id,
                                               DaveGroup(channel_id, committer=self.committer,
                                                         relay_delay=self.dave_relay_delay))
        return self._channels[key]

    def session(self, guild_id: int) -> BotSession:
        return self._sessions[guild_id]

    def add_speaker(self, guild_id: int, channel_id: int, user_id: int, *, seed: int = 0) -> SimulatedSpeaker:
        """A simulated user joins the channel (a mid-call join if the bot is already there)."""
        channel = self.channel(guild_id, channel_id)
        speaker = SimulatedSpeaker(self, channel, user_id, next(self._ssrcs), seed=seed)
        channel.speakers[user_id] = speaker
        # Discord announces the client (op 11) before its MLS Add proposal.
        self._notify_bot(guild_id, channel_id, 11, {"user_ids": [str(user_id)]})
        channel.group.add_simulated(user_id)
        return speaker

    def remove_speaker(self, guild_id: int, channel_id: int, user_id: int) -> None:
        channel = self.channel(guild_id, channel_id)
        channel.speakers.pop(user_id, None)
        self._notify_bot(guild_id, channel_id, 13, {"user_id": str(user_id)})
        channel.group.remove_simulated(user_id)

    async def move(self) -> None:
        """This media server is replaced by another one: new websocket and UDP ports (the old
        ones stop answering), and every simulated member's client reconnects to it with a new
        SSRC. A member already talking does not send SPEAKING again (clients send it when they
        start talking, and the bot is not connected to the new server yet), so the bot has no
        SSRC → user mapping for them. Tell the bot with ``FakeDiscord.move_voice_server``."""
        assert self._runner is not None and self._udp is not None
        site = web.TCPSite(self._runner, self._host, 0, ssl_context=self._certs.server_context())
        await site.start()
        self._ws_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # aiohttp keeps it private
        old_udp = self._udp
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(self._host, 0))
        self.udp_port = self._udp.get_extra_info("sockname")[1]
        old_udp.close()
        for channel in self._channels.values():
            for speaker in channel.speakers.values():
                speaker.ssrc = next(self._ssrcs)
                speaker.announced = False

    def downgrade(self, guild_id: int, channel_id: int) -> None:
        self.channel(guild_id, channel_id).group.downgrade()

    def upgrade(self, guild_id: int, channel_id: int) -> None:
        self.channel(guild_id, channel_id).group.upgrade()

    async def wait_connected(self, guild_id: int, *, identifies: int = 1) -> BotSession:
        """Wait until the bot's ``identifies``-th connection in the guild has a transport key."""
        def connected() -> bool:
            session = self._sessions.get(guild_id)
            return (session is not None and session.identifies >= identifies
                    and session.cipher is not None and session.bot_addr is not None)
        async with self._state_changed:
            await self._state_changed.wait_for(connected)
        return self._sessions[guild_id]

    def _changed(self) -> None:
        async def notify() -> None:
            async with self._state_changed:
                self._state_changed.notify_all()
        task = asyncio.get_running_loop().create_task(notify())
        self._notifications.add(task)
        task.add_done_callback(self._notifications.discard)

    async def wait_dave_settled(self, guild_id: int) -> None:
        session = await self.wait_connected(guild_id)
        await self.channel(guild_id, session.channel_id).group.wait_settled()

    async def drop_connection(self, guild_id: int, code: int = CLOSE_VOICE_SERVER_CRASHED) -> None:
        """Close the bot's voice websocket with ``code`` (4015 asks discord.py to resume)."""
        session = self._sessions[guild_id]
        if session.ws is not None:
            await session.ws.close(code=code)

    def send_raw(self, guild_id: int, data: bytes) -> None:
        """Send any datagram to the bot's UDP address (garbage, truncated, RTCP...), unless the
        bot's endpoint has been idle longer than ``udp_idle_timeout``."""
        session = self._sessions.get(guild_id)
        if session is not None and session.bot_addr is not None and self._udp is not None:
            heard = session.last_datagram_at
            if heard is not None and self._clock() - heard > self.udp_idle_timeout:
                session.withheld += 1
                return
            self._udp.sendto(data, session.bot_addr)

    def bot_audio(self, guild_id: int) -> BotAudio:
        return self._sessions[guild_id].audio

    def speakers(self) -> Iterator[SimulatedSpeaker]:
        for channel in self._channels.values():
            yield from channel.speakers.values()

    # ----- used by SimulatedSpeaker -----
    def bot_in_channel(self, guild_id: int, channel_id: int) -> BotSession | None:
        session = self._sessions.get(guild_id)
        if session is None or session.channel_id != channel_id or session.ws is None:
            return None
        return session

    def _notify_bot(self, guild_id: int, channel_id: int, op: int, data: dict[str, Any]) -> None:
        session = self.bot_in_channel(guild_id, channel_id)
        if session is not None:
            channel = self.channel(guild_id, channel_id)
            channel.group.spawn(session.send_json(op, data))

    # ----- UDP -----
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        pass

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if is_ip_discovery_request(data):
            ssrc = struct.unpack_from(">I", data, 4)[0]
            for session in self._sessions.values():
                if session.ssrc == ssrc:
                    session.bot_addr = addr
                    session.last_datagram_at = self._clock()
                    self._by_addr[addr] = session
                    self._changed()
                    assert self._udp is not None
                    self._udp.sendto(ip_discovery_response(ssrc, addr[0], addr[1]), addr)
            return
        session = self._by_addr.get(addr)
        if session is not None:
            session.last_datagram_at = self._clock()
            if len(data) == KEEPALIVE_BYTES:
                session.keepalives += 1
                return
        if session is None or session.cipher is None:
            self.undecryptable.append(data)
            return
        try:
            header, payload = session.cipher.open(data)
        except Exception:
            self.undecryptable.append(data)
            return
        group = self.channel(session.guild_id, session.channel_id).group
        session.audio.record(header, payload, group.decrypt_from_bot)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP port unreachable after the bot closes its socket: expected on loopback
