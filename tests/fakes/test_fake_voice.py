"""Self-test of the fake voice server against the real discord.py 2.7.1 VoiceClient.

The main fake Discord lives elsewhere; here a ~50-line gateway stub stands in for it (plain ws,
which only the *main* gateway may use) so the voice side can be proven on its own: TLS voice
gateway v8, UDP, a real DAVE group, re-keying, reconnects, and audio in both directions.
"""

from __future__ import annotations

import asyncio
import json
import struct
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import davey
import discord
import nacl.secret
import numpy as np
import pytest
import yarl
from aiohttp import web
from discord.gateway import DiscordWebSocket
from discord.voice_state import VoiceConnectionState

from tests.fakes import tls
from tests.fakes.voice.audio import decode_opus, encode_opus, rms, synth_speech
from tests.fakes.voice.server import FakeVoiceServer

BOT, GUILD, VCH = 111, 500, 999
ALICE, BOB = 222, 333


def _user(uid: int) -> dict[str, Any]:
    return {"id": str(uid), "username": f"u{uid}", "discriminator": "0", "avatar": None,
            "global_name": None, "bot": uid == BOT}


def _member(uid: int) -> dict[str, Any]:
    return {"user": _user(uid), "roles": [], "joined_at": "2024-01-01T00:00:00+00:00",
            "deaf": False, "mute": False, "flags": 0}


def _json(body: Any, status: int = 200) -> web.Response:
    # discord.py only parses bodies whose Content-Type is exactly "application/json".
    return web.Response(body=json.dumps(body).encode(), status=status,
                        headers={"Content-Type": "application/json"})


class GatewayStub:
    """Just enough REST + gateway for discord.py to log in and join voice."""

    def __init__(self, voice: FakeVoiceServer) -> None:
        self.voice = voice
        self.ws: web.WebSocketResponse | None = None
        self.seq = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _rest(self, request: web.Request) -> web.Response:
        if request.path.endswith("/users/@me"):
            return _json(_user(BOT))
        if request.path.endswith("/applications/@me"):
            return _json({"id": str(BOT), "name": "app", "description": "", "icon": None,
                                      "bot_public": True, "bot_require_code_grant": False,
                                      "owner": _user(1), "verify_key": "", "flags": 0})
        return _json({"message": "not found", "code": 0}, status=404)

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        assert self.ws is not None
        self.seq += 1
        await self.ws.send_json({"op": 0, "t": event, "s": self.seq, "d": data})

    async def move_voice_server(self) -> None:
        """Discord moving the call to another voice server: a new token, same session."""
        token = self.voice.open_session(guild_id=GUILD, channel_id=VCH, user_id=BOT, session_id="vsess")
        await self.dispatch("VOICE_SERVER_UPDATE",
                            {"token": token, "guild_id": str(GUILD), "endpoint": self.voice.endpoint})

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.ws = ws
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 41250}})
        async for message in ws:
            payload = json.loads(message.data)
            op, d = payload["op"], payload["d"]
            if op == 1:
                await ws.send_json({"op": 11})
            elif op == 2:
                await self._ready()
            elif op == 4:
                await self._voice_state(d)
        return ws

    async def _ready(self) -> None:
        await self.dispatch("READY", {"v": 10, "user": _user(BOT), "session_id": "sess",
                                      "guilds": [{"id": str(GUILD), "unavailable": True}],
                                      "resume_gateway_url": f"ws://127.0.0.1:{self.port}",
                                      "application": {"id": str(BOT), "flags": 0}})
        await self.dispatch("GUILD_CREATE", {
            "id": str(GUILD), "name": "g", "owner_id": "1", "member_count": 2, "unavailable": False,
            "roles": [{"id": str(GUILD), "name": "@everyone", "permissions": str((1 << 41) - 1),
                       "position": 0, "color": 0, "hoist": False, "managed": False, "mentionable": False}],
            "channels": [{"id": str(VCH), "type": 2, "name": "voice", "position": 0,
                          "permission_overwrites": [], "bitrate": 64000, "user_limit": 0}],
            "members": [_member(BOT), _member(ALICE), _member(BOB)], "voice_states": [],
            "presences": [], "emojis": [], "stickers": [], "threads": [], "stage_instances": [],
            "guild_scheduled_events": [], "features": [], "premium_tier": 0})

    async def _voice_state(self, d: dict[str, Any]) -> None:
        channel = d["channel_id"]
        await self.dispatch("VOICE_STATE_UPDATE", {
            "guild_id": str(GUILD), "channel_id": channel and str(channel), "user_id": str(BOT),
            "session_id": "vsess", "deaf": False, "mute": False, "self_deaf": d["self_deaf"],
            "self_mute": d["self_mute"], "self_video": False, "suppress": False, "member": _member(BOT)})
        if channel is None:
            self.voice.close_session(GUILD)
            return
        token = self.voice.open_session(guild_id=GUILD, channel_id=int(channel), user_id=BOT, session_id="vsess")
        await self.dispatch("VOICE_SERVER_UPDATE",
                            {"token": token, "guild_id": str(GUILD), "endpoint": self.voice.endpoint})


class ReceivingVoiceClient(discord.VoiceClient):
    """The smallest DAVE-aware receiver: SSRC map from op 5, transport AEAD, then DAVE."""

    def __init__(self, client: discord.Client, channel: discord.abc.Connectable) -> None:
        super().__init__(client, channel)
        self.ssrc_to_user: dict[int, int] = {}
        self.heard: list[tuple[int | None, int, bytes]] = []  # (user, RTP sequence, opus)
        self.heard_event = asyncio.Event()
        self._listening = False
        # SPEAKING (websocket) and the first packets (UDP) race, as they do against Discord;
        # packets from a not-yet-announced SSRC wait here instead of being misattributed.
        self._unknown: dict[int, list[bytes]] = {}
        self.executed: list[int] = []
        self._lock = threading.Lock()

    def create_connection_state(self) -> VoiceConnectionState:
        async def hook(ws: Any, msg: dict[str, Any]) -> None:
            if msg["op"] == 5 and "user_id" in msg["d"]:
                with self._lock:
                    self.ssrc_to_user[msg["d"]["ssrc"]] = int(msg["d"]["user_id"])
                    waiting = self._unknown.pop(msg["d"]["ssrc"], [])
                for packet in waiting:
                    self._on_packet(packet)
            if msg["op"] == 22:  # the hook runs after discord.py has executed the transition
                self.executed.append(msg["d"]["transition_id"])
                self.heard_event.set()
        return VoiceConnectionState(self, hook=hook)

    def start_listening(self) -> None:
        if not self._listening:
            self._listening = True
            self._connection.add_socket_listener(self._on_packet)

    def _on_packet(self, data: bytes) -> None:  # discord.py's socket-reader thread
        if len(data) == 74 or 200 <= data[1] <= 204:
            return
        header_len = 12 + 4 * (data[0] & 0x0F)
        ext_words = struct.unpack_from(">H", data, header_len + 2)[0] if data[0] & 0x10 else 0
        header_len += 4 if data[0] & 0x10 else 0
        ssrc = struct.unpack_from(">I", data, 8)[0]
        with self._lock:
            user = self.ssrc_to_user.get(ssrc)
            if user is None:
                self._unknown.setdefault(ssrc, []).append(data)
                return
        plain = nacl.secret.Aead(bytes(self.secret_key)).decrypt(
            data[header_len:-4], data[:header_len], data[-4:] + bytes(20))[4 * ext_words:]
        dave = self._connection.dave_session
        if dave is not None and self._connection.dave_protocol_version > 0 and user is not None:
            plain = dave.decrypt(user, davey.MediaType.audio, plain)
        self.heard.append((user, struct.unpack_from(">H", data, 2)[0], bytes(plain)))
        self.client.loop.call_soon_threadsafe(self.heard_event.set)

    async def wait_executed(self, transition_id: int) -> None:
        while transition_id not in self.executed:
            self.heard_event.clear()
            await self.heard_event.wait()

    async def wait_heard(self, count: int) -> list[tuple[int | None, int, bytes]]:
        while len(self.heard) < count:
            self.heard_event.clear()
            await self.heard_event.wait()
        return self.heard


@dataclass
class Harness:
    voice: FakeVoiceServer
    gateway: GatewayStub
    client: discord.Client
    vc: ReceivingVoiceClient
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tls.TestCertificates:
    return tls.make_test_certificates(Path(tmp_path_factory.mktemp("certs")))


@pytest.fixture
async def harness(certs: tls.TestCertificates, monkeypatch: pytest.MonkeyPatch,
                  request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    # Parametrize indirectly with "bot" to make the bot commit every change instead of a member.
    voice = await FakeVoiceServer(certs, committer=getattr(request, "param", "simulated")).start()
    gateway = GatewayStub(voice)
    await gateway.start()
    # The stub's two redirections; the real fake Discord owns how the bot is pointed at it.
    monkeypatch.setattr(discord.http.Route, "BASE", f"http://127.0.0.1:{gateway.port}/api/v10")
    monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(f"ws://127.0.0.1:{gateway.port}/gateway"))
    client = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.05,
                            connector=aiohttp.TCPConnector(ssl=certs.client_context()))
    ready = asyncio.Event()
    client.event(_on_ready(ready))
    task = asyncio.create_task(client.start("token"))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait([waiter, task], return_when=asyncio.FIRST_COMPLETED)
    if task.done():  # login failed: surface the real error instead of hanging
        waiter.cancel()
        await task
    channel = client.get_channel(VCH)
    assert isinstance(channel, discord.VoiceChannel)
    voice.add_speaker(GUILD, VCH, ALICE, seed=1)  # Alice is in the call before the bot joins
    vc = await channel.connect(cls=ReceivingVoiceClient)
    vc.start_listening()
    try:
        yield Harness(voice, gateway, client, vc, [task])
    finally:
        await vc.disconnect(force=True)
        await client.close()
        await task
        await gateway.close()
        await voice.close()


def _on_ready(event: asyncio.Event) -> Any:
    async def on_ready() -> None:
        event.set()
    return on_ready


async def _speak_and_hear(h: Harness, user: int, frames: list[bytes]) -> list[bytes]:
    start = len(h.vc.heard)
    speaker = next(s for s in h.voice.speakers() if s.user_id == user)
    sent = await speaker.speak_opus(frames, realtime=False, trailing_silence=0)
    heard = await h.vc.wait_heard(start + len(frames))
    # Held-back packets of a not-yet-announced SSRC may be handled out of order; RTP order rules.
    by_sequence = {seq: opus for uid, seq, opus in heard[start:] if uid == user}
    return [by_sequence.get(frame.sequence, b"") for frame in sent]


async def _settle(h: Harness) -> None:
    """Wait until the fake finished re-keying and the bot has executed the last transition."""
    await h.voice.wait_dave_settled(GUILD)
    executed = h.voice.channel(GUILD, VCH).group.transitions_executed
    if executed:
        await h.vc.wait_executed(executed[-1])


async def test_bot_joins_with_dave_and_hears_exact_opus(harness: Harness) -> None:
    h = harness
    await _settle(h)
    state = h.vc._connection
    assert h.vc.mode == "aead_xchacha20_poly1305_rtpsize"
    assert state.dave_protocol_version == 1 and state.can_encrypt
    assert h.vc.voice_privacy_code == h.voice.channel(GUILD, VCH).group.session(ALICE).voice_privacy_code
    frames = encode_opus(synth_speech(0.2, seed=3))
    assert await _speak_and_hear(h, ALICE, frames) == frames


@pytest.mark.parametrize("harness", ["simulated", "bot"], indirect=True)
async def test_mid_call_join_rekeys_and_leave_rekeys(harness: Harness) -> None:
    h = harness
    await _settle(h)
    epoch_before = h.vc._connection.dave_session.epoch
    h.voice.add_speaker(GUILD, VCH, BOB, seed=2)
    await _settle(h)
    assert h.vc._connection.dave_session.epoch == epoch_before + 1
    for user in (ALICE, BOB):
        frames = encode_opus(synth_speech(0.1, seed=user))
        assert await _speak_and_hear(h, user, frames) == frames
    h.voice.remove_speaker(GUILD, VCH, ALICE)
    await _settle(h)
    assert sorted(h.vc._connection.dave_session.get_user_ids()) == sorted([str(BOT), str(BOB)])
    frames = encode_opus(synth_speech(0.1, seed=9))
    assert await _speak_and_hear(h, BOB, frames) == frames


async def test_voice_server_move_reidentifies_and_rekeys(harness: Harness) -> None:
    h = harness
    await _settle(h)
    await h.gateway.move_voice_server()
    await h.voice.wait_connected(GUILD, identifies=2)  # re-dialled with the new token
    await _settle(h)
    await h.vc._connection.wait_async()
    frames = encode_opus(synth_speech(0.1, seed=4))
    assert await _speak_and_hear(h, ALICE, frames) == frames


async def test_bot_audio_reaches_the_fake_decrypted(harness: Harness) -> None:
    h = harness
    await _settle(h)
    pcm = synth_speech(0.3, seed=5)
    frames = encode_opus(pcm)
    for frame in frames:
        h.vc.send_audio_packet(frame, encode=False)
    heard = await h.voice.bot_audio(GUILD).wait_for_frames(len(frames))
    assert [f.opus for f in heard] == frames
    assert all(f.e2ee for f in heard)
    assert [f.timestamp - heard[0].timestamp for f in heard] == [960 * i for i in range(len(frames))]
    decoded = decode_opus(frames)
    assert rms(h.voice.bot_audio(GUILD).decode()) == pytest.approx(rms(decoded))
    assert np.abs(decoded).max() > 1000


async def test_downgrade_to_plain_opus_and_back_up(harness: Harness) -> None:
    h = harness
    await _settle(h)
    h.voice.downgrade(GUILD, VCH)
    await _settle(h)
    assert h.vc._connection.dave_protocol_version == 0 and not h.vc._connection.can_encrypt
    frames = encode_opus(synth_speech(0.1, seed=6))
    assert await _speak_and_hear(h, ALICE, frames) == frames  # plain Opus, passthrough
    h.vc.send_audio_packet(frames[0], encode=False)
    heard = await h.voice.bot_audio(GUILD).wait_for_frames(1)
    assert heard[-1].opus == frames[0] and not heard[-1].e2ee

    h.voice.upgrade(GUILD, VCH)
    await _settle(h)
    assert h.vc._connection.dave_protocol_version == 1 and h.vc._connection.can_encrypt
    assert await _speak_and_hear(h, ALICE, frames) == frames
    h.vc.send_audio_packet(frames[1], encode=False)
    heard = await h.voice.bot_audio(GUILD).wait_for_frames(2)
    assert heard[-1].opus == frames[1] and heard[-1].e2ee
