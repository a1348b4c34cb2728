"""The fake voice server's voice gateway (v8, over TLS): hello and heartbeats, identify and
resume (replaying what the client missed after its ``seq_ack``), select protocol (the transport
key), and the DAVE opcodes it relays to the channel's group."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.voice.group import OP_EXTERNAL_SENDER, BotLink
from tests.fakes.voice.rtp import SUPPORTED_MODES, TransportCipher
from tests.fakes.voice.session import BotSession, VoiceChannel

HEARTBEAT_INTERVAL_MS = 13_750  # what Discord's voice servers advertise
CLOSE_AUTHENTICATION_FAILED = 4004
CLOSE_SESSION_INVALID = 4006
CLOSE_SERVER_NOT_FOUND = 4011
CLOSE_VOICE_SERVER_CRASHED = 4015  # discord.py 2.7.1 answers this with a RESUME


class VoiceGateway:
    def __init__(self, *, sessions: Mapping[int, BotSession], channel: Callable[[int, int], VoiceChannel],
                 media: Callable[[], tuple[str, int]], keyed: Callable[[], None]) -> None:
        """``sessions``: the server's bot sessions by guild; ``channel``: a guild's voice channel (made
        on first use); ``media``: the UDP address the bot is told to send to; ``keyed``: called once
        a session has its transport key."""
        self._sessions = sessions
        self._channel = channel
        self._media = media
        self._keyed = keyed

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """One websocket connection of the bot's (``wss://{endpoint}/?v=8``)."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if request.query.get("v") != "8":
            await ws.close(code=4012, message=b"unknown protocol version")  # Discord's 4012
            return ws
        await ws.send_str(json.dumps({"op": 8, "d": {"v": 8, "heartbeat_interval": HEARTBEAT_INTERVAL_MS}}))
        session: BotSession | None = None
        try:
            async for message in ws:
                if message.type is aiohttp.WSMsgType.BINARY and session is not None:
                    self._on_binary(session, message.data)
                elif message.type is aiohttp.WSMsgType.TEXT:
                    session = await self._on_json(ws, session, json.loads(message.data))
        finally:
            if session is not None and session.ws is ws:
                session.ws = None
                self._channel(session.guild_id, session.channel_id).group.bot_disconnected()
        return ws

    async def _on_json(self, ws: web.WebSocketResponse, session: BotSession | None,
                       message: dict[str, Any]) -> BotSession | None:
        op, data = message["op"], message.get("d")
        if session is not None:
            session.received_ops.append((op, data))
        if op == 3:  # heartbeat; v8 clients echo the last sequence they saw as seq_ack
            if session is not None:
                session.last_seq_ack = data.get("seq_ack")
            await ws.send_str(json.dumps({"op": 6, "d": {"t": data["t"]}}))
        elif op == 0:
            return await self._identify(ws, data)
        elif op == 7:
            return await self._resume(ws, data)
        elif session is None:
            await ws.close(code=4003, message=b"not authenticated")
        elif op == 1:
            await self._select_protocol(session, data)
        elif op == 5:
            session.audio.speaking_updates.append(int(data.get("speaking", 0)))
        elif op == 23:
            self._channel(session.guild_id, session.channel_id).group.on_transition_ready(data["transition_id"])
        return session

    def _authenticate(self, data: dict[str, Any]) -> BotSession | None:
        session = self._sessions.get(int(data.get("server_id", 0)))
        if session is None or data.get("token") != session.token or data.get("session_id") != session.session_id:
            return None
        return session

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> BotSession | None:
        session = self._authenticate(data)
        if session is None or int(data.get("user_id", 0)) != session.user_id:
            await ws.close(code=CLOSE_AUTHENTICATION_FAILED)
            return None
        await self._replace_ws(session, ws)
        session.identifies += 1
        session.received_ops.append((0, data))
        session.cipher = None
        session.secret_key = os.urandom(32)
        session.seq = 0
        session.sent.clear()
        channel = self._channel(session.guild_id, session.channel_id)
        max_dave = int(data.get("max_dave_protocol_version", 0))
        link = BotLink(session.user_id, session.send_json, session.send_binary)
        link.awaiting_key_package = max_dave > 0 and channel.group.protocol_version > 0
        channel.group.bot_connected(link)
        host, port = self._media()
        await session.send_json(2, {"ssrc": session.ssrc, "ip": host, "port": port,
                                    "modes": list(SUPPORTED_MODES), "heartbeat_interval": 1})
        return session

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> BotSession | None:
        session = self._authenticate(data)
        if session is None or session.cipher is None:
            await ws.close(code=CLOSE_SESSION_INVALID)
            return None
        await self._replace_ws(session, ws)
        session.resumes += 1
        session.received_ops.append((7, data))
        seq_ack = int(data.get("seq_ack", -1))
        await ws.send_str(json.dumps({"op": 9, "d": None}))
        for seq, frame in list(session.sent):  # replay what the client missed
            if seq > seq_ack:
                await (ws.send_str(frame) if isinstance(frame, str) else ws.send_bytes(frame))
        return session

    async def _replace_ws(self, session: BotSession, ws: web.WebSocketResponse) -> None:
        old, session.ws = session.ws, ws
        if old is not None and old is not ws and not old.closed:
            await old.close(code=4014)

    async def _select_protocol(self, session: BotSession, data: dict[str, Any]) -> None:
        mode = data["data"]["mode"]
        if mode not in SUPPORTED_MODES:
            await self._close(session, 4016)  # Discord: unknown encryption mode
            return
        session.cipher = TransportCipher(mode, session.secret_key)
        self._keyed()
        channel = self._channel(session.guild_id, session.channel_id)
        group = channel.group
        dave = group.protocol_version if group.bot is not None and group.bot.awaiting_key_package else 0
        await session.send_json(4, {"mode": mode, "secret_key": list(session.secret_key),
                                    "audio_codec": "opus", "dave_protocol_version": dave})
        if dave:
            await session.send_binary(OP_EXTERNAL_SENDER, group.external_sender.package)
        if channel.speakers:
            await session.send_json(11, {"user_ids": [str(uid) for uid in channel.speakers]})
        for speaker in channel.speakers.values():
            speaker.announced = False  # a new connection must learn every SSRC again

    async def _close(self, session: BotSession, code: int) -> None:
        if session.ws is not None:
            await session.ws.close(code=code)

    def _on_binary(self, session: BotSession, frame: bytes) -> None:
        op, payload = frame[0], frame[1:]
        session.received_ops.append((op, len(payload)))
        group = self._channel(session.guild_id, session.channel_id).group
        if op == 26:
            group.on_key_package(payload)
        elif op == 28:
            group.on_commit_welcome(payload)
