"""The fake voice server's state per guild: the bot's voice session and each voice channel."""

from __future__ import annotations

import json
import os
import struct
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.voice.group import DaveGroup
from tests.fakes.voice.recording import BotAudio
from tests.fakes.voice.rtp import TransportCipher
from tests.fakes.voice.speaker import SimulatedSpeaker


@dataclass(slots=True)
class VoiceChannel:
    guild_id: int
    channel_id: int
    group: DaveGroup
    speakers: dict[int, SimulatedSpeaker] = field(default_factory=dict)


@dataclass(slots=True)
class BotSession:
    """The bot's voice session in one guild, surviving websocket reconnects until closed."""

    guild_id: int
    channel_id: int
    user_id: int
    session_id: str
    token: str
    ssrc: int
    secret_key: bytes = field(default_factory=lambda: os.urandom(32))
    cipher: TransportCipher | None = None
    ws: web.WebSocketResponse | None = None
    bot_addr: tuple[str, int] | None = None
    seq: int = 0
    # Messages kept for v8 resume: the server replays everything after the client's seq_ack.
    sent: deque[tuple[int, str | bytes]] = field(default_factory=lambda: deque(maxlen=256))
    last_seq_ack: int | None = None
    identifies: int = 0
    resumes: int = 0
    received_ops: list[tuple[int, Any]] = field(default_factory=list)
    audio: BotAudio = field(default_factory=BotAudio)
    last_datagram_at: float | None = None  # when the bot's UDP endpoint last sent anything
    keepalives: int = 0
    withheld: int = 0  # datagrams not relayed because the bot's endpoint had gone idle

    async def send_json(self, op: int, data: dict[str, Any]) -> None:
        """To the bot's current websocket, numbered (v8) and kept for a resume to replay."""
        self.seq += 1
        text = json.dumps({"op": op, "d": data, "seq": self.seq})
        self.sent.append((self.seq, text))
        if self.ws is not None and not self.ws.closed:
            await self.ws.send_str(text)

    async def send_binary(self, op: int, payload: bytes) -> None:
        self.seq += 1
        frame = struct.pack(">HB", self.seq & 0xFFFF, op) + payload
        self.sent.append((self.seq, frame))
        if self.ws is not None and not self.ws.closed:
            await self.ws.send_bytes(frame)
