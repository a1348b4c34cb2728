"""The main gateway: HELLO, heartbeats, IDENTIFY -> READY -> GUILD_CREATE, RESUME, dispatch.

Frames go out as plain JSON text even though discord.py asks for ``compress=zlib-stream``:
``DiscordWebSocket.received_message`` only inflates ``bytes`` frames, so text is accepted as is,
and tests can read what was sent without a decompressor.

Each IDENTIFY opens a session that outlives its socket: events dispatched while the bot is
disconnected are kept and replayed on RESUME (op 6), as Discord does, so reconnect tests can check
that nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from .server import FakeDiscord

Json = dict[str, Any]

# Gateway opcodes (Discord developer docs, "Gateway Opcodes").
DISPATCH, HEARTBEAT, IDENTIFY, VOICE_STATE_UPDATE, RESUME, RECONNECT = 0, 1, 2, 4, 6, 7
REQUEST_GUILD_MEMBERS, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 8, 9, 10, 11

# Intent bits that gate the events this fake dispatches.
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_VOICE_STATES = 1 << 7
INTENT_GUILD_MESSAGES = 1 << 9
EVENT_INTENTS = {
    "VOICE_STATE_UPDATE": INTENT_GUILD_VOICE_STATES,
    "GUILD_MEMBER_ADD": INTENT_GUILD_MEMBERS,
    "GUILD_MEMBER_UPDATE": INTENT_GUILD_MEMBERS,
    "GUILD_MEMBER_REMOVE": INTENT_GUILD_MEMBERS,
    "MESSAGE_CREATE": INTENT_GUILD_MESSAGES,
    "MESSAGE_UPDATE": INTENT_GUILD_MESSAGES,
}


@dataclass(slots=True)
class GatewaySession:
    """One IDENTIFYed session; ``log`` keeps every dispatch for RESUME replay."""

    session_id: str
    identify: Json
    intents: int
    shard: tuple[int, int]
    seq: int = 0
    log: list[Json] = field(default_factory=list)
    ws: web.WebSocketResponse | None = None

    def owns(self, guild_id: int | None) -> bool:
        shard_id, shard_count = self.shard
        return guild_id is None or (guild_id >> 22) % shard_count == shard_id


@dataclass(slots=True)
class GatewayConnection:
    """One WebSocket the bot opened: its query string and what it did with it."""

    query: dict[str, str]
    session: GatewaySession | None = None
    resumed: bool = False
    heartbeats: int = 0
    close_code: int | None = None
    received: list[Json] = field(default_factory=list)


class Gateway:
    def __init__(self, fake: FakeDiscord, *, heartbeat_interval_ms: int = 41250) -> None:
        self._fake = fake
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.sessions: dict[str, GatewaySession] = {}
        self.connections: list[GatewayConnection] = []
        self.identifies: list[Json] = []
        self.resumes: list[Json] = []
        self.voice_state_updates: list[Json] = []  # every op 4 payload the bot sent
        self.member_requests: list[Json] = []
        self.unhandled_ops: list[Json] = []
        self._sockets: set[web.WebSocketResponse] = set()
        self._changed = asyncio.Condition()
        # An outage: new connections are refused with 503 before the upgrade (drop() ends the open ones).
        self.refusing = False

    # ---------- test-facing ----------
    @property
    def open_sessions(self) -> list[GatewaySession]:
        return [s for s in self.sessions.values() if s.ws is not None and not s.ws.closed]

    async def wait_for(
        self, predicate: Callable[[], bool],
        timeout: float = 10.0,  # noqa: ASYNC109 - a deadline argument reads better in tests than a wrapping asyncio.timeout
    ) -> None:
        """Wait until ``predicate()`` holds; it is re-checked after every gateway event."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    async def wait_ready(self, timeout: float = 10.0) -> GatewaySession:  # noqa: ASYNC109 - as wait_for
        """Wait until some session got READY and all its GUILD_CREATEs."""
        await self.wait_for(lambda: bool(self._ready_sessions()), timeout)
        return self._ready_sessions()[-1]

    def _ready_sessions(self) -> list[GatewaySession]:
        return [s for s in self.open_sessions if any(f["t"] == "READY" for f in s.log)]

    async def dispatch(self, event: str, data: Json, *, guild_id: int | None = None) -> int:
        """Send a DISPATCH to every session that owns ``guild_id`` and has the event's intent.

        Returns how many sessions it was queued for; disconnected sessions keep it for RESUME.
        """
        needed = EVENT_INTENTS.get(event, 0)
        count = 0
        for session in list(self.sessions.values()):
            if not session.owns(guild_id) or (needed and not session.intents & needed):
                continue
            await self._send_dispatch(session, event, data)
            count += 1
        await self._notify()
        return count

    async def request_reconnect(self) -> None:
        """Send op 7; discord.py closes the socket and RESUMEs on a new one."""
        for session in self.open_sessions:
            await self._send(session.ws, {"op": RECONNECT, "d": None})

    async def invalidate_session(self, *, resumable: bool = False) -> None:
        for session in self.open_sessions:
            await self._send(session.ws, {"op": INVALID_SESSION, "d": resumable})

    async def drop(self, code: int = 4000) -> None:
        """Close every socket as an outage would; 4000 is a close code discord.py resumes after."""
        for ws in list(self._sockets):
            await ws.close(code=code, message=b"fake outage")

    async def close_all(self) -> None:
        # 1001 "going away": discord.py stops reading instead of hanging on a half-open socket.
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"fake discord stopping")

    # ---------- socket handling ----------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.refusing:
            return web.Response(status=503, text="fake gateway outage")
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        connection = GatewayConnection(query=dict(request.query))
        self.connections.append(connection)
        self._sockets.add(ws)
        try:
            await self._send(ws, {"op": HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                payload = json.loads(message.data)
                connection.received.append(payload)
                await self._on_frame(ws, connection, payload)
                await self._notify()
        finally:
            self._sockets.discard(ws)
            connection.close_code = ws.close_code
            if connection.session is not None and connection.session.ws is ws:
                connection.session.ws = None
            await self._notify()
        return ws

    async def _on_frame(self, ws: web.WebSocketResponse, connection: GatewayConnection,
                        payload: Json) -> None:
        op, data = payload.get("op"), payload.get("d")
        if op == HEARTBEAT:
            connection.heartbeats += 1
            await self._send(ws, {"op": HEARTBEAT_ACK, "d": None})
        elif op == IDENTIFY:
            await self._identify(ws, connection, data)
        elif op == RESUME:
            await self._resume(ws, connection, data)
        elif op == VOICE_STATE_UPDATE and connection.session is not None:
            self.voice_state_updates.append(data)
            await self._fake.voice.on_bot_voice_state(connection.session, data)
        elif op == REQUEST_GUILD_MEMBERS and connection.session is not None:
            self.member_requests.append(data)
            await self._send_dispatch(connection.session, "GUILD_MEMBERS_CHUNK",
                                      self._fake.members_chunk(data))
        else:
            self.unhandled_ops.append(payload)

    async def _identify(self, ws: web.WebSocketResponse, connection: GatewayConnection, data: Json) -> None:
        self.identifies.append(data)
        if not self._fake.token_ok(data.get("token", "")):
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        shard = data.get("shard") or [0, 1]
        session = GatewaySession(
            session_id=secrets.token_hex(16), identify=data, intents=int(data.get("intents", 0)),
            shard=(int(shard[0]), int(shard[1])), ws=ws,
        )
        self.sessions[session.session_id] = session
        connection.session = session
        await self._send_dispatch(session, "READY", self._fake.ready_payload(session))
        for guild_payload in self._fake.guild_creates(session):
            await self._send_dispatch(session, "GUILD_CREATE", guild_payload)

    async def _resume(self, ws: web.WebSocketResponse, connection: GatewayConnection, data: Json) -> None:
        self.resumes.append(data)
        session = self.sessions.get(data.get("session_id", ""))
        if session is None or not self._fake.token_ok(data.get("token", "")):
            await self._send(ws, {"op": INVALID_SESSION, "d": False})
            return
        session.ws = ws
        connection.session = session
        connection.resumed = True
        last_seen = data.get("seq") or 0
        for frame in session.log:
            if frame["s"] > last_seen:
                await self._send(ws, frame)
        await self._send_dispatch(session, "RESUMED", {})

    async def _send_dispatch(self, session: GatewaySession, event: str, data: Json) -> None:
        session.seq += 1
        frame = {"op": DISPATCH, "t": event, "s": session.seq, "d": data}
        session.log.append(frame)
        if session.ws is not None:
            await self._send(session.ws, frame)

    async def _send(self, ws: web.WebSocketResponse, frame: Json) -> None:
        if ws.closed:
            return
        # The socket may die between the check and the write; the frame stays in the session log.
        with contextlib.suppress(ConnectionError):
            await ws.send_str(json.dumps(frame))

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
