"""FakeDiscord: REST, main gateway and interactions on one TLS port of 127.0.0.1.

    fake = FakeDiscord(certs, bot_id=111, bot_name="Voxcord")
    guild = fake.add_guild("Test guild")
    alice = guild.add_member(222, "alice")
    voice = guild.add_voice_channel("Lounge")
    await fake.start()
    with routed_to(fake):  # discord.py's Route.BASE and DEFAULT_GATEWAY point here
        ...                # start a client with a connector that trusts certs.ca_file
    record = await fake.invoke(guild_id=guild.id, user_id=222, command="voice set", options={...})
    reply = await record.wait_reply()
    await fake.stop()
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import discord
import yarl
from aiohttp import web

from . import commands, payloads
from .gateway import INTENT_GUILD_MEMBERS, Gateway, GatewaySession
from .interactions import InteractionLedger, InteractionRecord
from .messages import Cdn, MessageStore
from .model import FakeChannel, FakeGuild, FakeUser, Snowflakes
from .rest import RecordedRequest, RestApi
from .voice_states import VoiceServerLike, VoiceStates

if TYPE_CHECKING:
    from tests.fakes.tls import TestCertificates

Json = dict[str, Any]


class FakeDiscord:
    def __init__(
        self, certificates: TestCertificates, *, bot_id: int = 111_000_000_000_000_001,
        bot_name: str = "Voxcord", application_id: int | None = None, token: str | None = None,
        voice_server: VoiceServerLike | None = None, recommended_shards: int = 1,
        heartbeat_interval_ms: int = 41250, ack_deadline: float | None = 3.0,
    ) -> None:
        """``token=None`` accepts any bot token; set it to test the bot's bad-token handling."""
        self._certificates = certificates
        self.snowflakes = Snowflakes()
        self.bot_user = FakeUser(id=bot_id, username=bot_name, bot=True)
        self.owner = FakeUser(id=self.snowflakes.next(), username="owner")
        self.application_id = application_id or bot_id
        self.token = token
        self.recommended_shards = recommended_shards
        self.users: dict[int, FakeUser] = {bot_id: self.bot_user, self.owner.id: self.owner}
        self.guilds: dict[int, FakeGuild] = {}
        self.commands: dict[int | None, list[Json]] = {}  # scope (guild id or None) -> synced commands
        self.command_syncs: list[tuple[int | None, list[Json]]] = []  # every bulk PUT, in order
        self.sent_messages: list[Json] = []  # POST /channels/{id}/messages
        # Discord's per-channel send limit, off unless a test sets it (e.g. (5, 5.0)); each 429 it
        # answered is recorded by channel id.
        self.channel_message_limit: tuple[int, float] | None = None
        self.channel_message_times: dict[int, list[float]] = {}
        self.rate_limited_messages: list[int] = []
        self.unhandled: list[RecordedRequest] = []
        self.port = 0
        self.cdn = Cdn(lambda: self.base_url)
        self.messages = MessageStore(snowflakes=self.snowflakes, cdn=self.cdn, author=lambda: self.bot_user,
                                     guild_of=self._guild_of_channel)
        self.gateway = Gateway(self, heartbeat_interval_ms=heartbeat_interval_ms)
        self.voice = VoiceStates(self, voice_server)
        self.interactions = InteractionLedger(self, ack_deadline=ack_deadline)
        self.rest = RestApi(self)
        self._runner: web.AppRunner | None = None

    # ---------- lifecycle ----------
    async def start(self) -> None:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_get("/gateway", self.gateway.handle)
        self.rest.install(app)
        # Short shutdown timeout: every gateway socket is closed explicitly in stop() first.
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._certificates.server_context())
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is None:
            return
        await self.gateway.close_all()
        await self._runner.cleanup()
        self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"wss://127.0.0.1:{self.port}/gateway"

    def settings_env(self) -> dict[str, str]:
        """Environment an operator would set to run the real bot against this fake."""
        return {"DISCORD_API_BASE_URL": self.api_base, "DISCORD_GATEWAY_URL": self.gateway_url,
                "SSL_CERT_FILE": str(self._certificates.ca_file)}

    def token_ok(self, token: str) -> bool:
        return self.token is None or token == self.token

    # ---------- world building ----------
    def add_user(self, user_id: int, username: str, *, global_name: str | None = None,
                 bot: bool = False) -> FakeUser:
        user = FakeUser(id=user_id, username=username, global_name=global_name, bot=bot)
        self.users[user_id] = user
        return user

    def add_guild(self, name: str = "Test guild", *, id: int | None = None, owner_id: int | None = None,
                  locale: str = "en-US", attachment_size_limit: int = 10 * 1024 * 1024) -> FakeGuild:
        """A guild the bot is in; the owner defaults to ``fake.owner`` (owners bypass permissions)."""
        guild = FakeGuild(id=id or self.snowflakes.next(), name=name, owner_id=owner_id or self.owner.id,
                          snowflakes=self.snowflakes, locale=locale,
                          attachment_size_limit=attachment_size_limit)
        guild.add_member(self.bot_user)
        if guild.owner_id in self.users:
            guild.add_member(self.users[guild.owner_id])
        self.guilds[guild.id] = guild
        return guild

    def find_channel(self, channel_id: int) -> tuple[FakeGuild, FakeChannel]:
        for guild in self.guilds.values():
            if channel_id in guild.channels:
                return guild, guild.channels[channel_id]
        raise KeyError(channel_id)

    def _guild_of_channel(self, channel_id: int) -> int | None:
        with contextlib.suppress(KeyError):
            return self.find_channel(channel_id)[0].id
        return None

    def attach_voice_server(self, voice_server: VoiceServerLike) -> None:
        self.voice.server = voice_server

    # ---------- gateway-facing state ----------
    def ready_payload(self, session: GatewaySession) -> Json:
        return {
            "v": 10, "user": payloads.user(self.bot_user), "session_id": session.session_id,
            "resume_gateway_url": self.gateway_url, "session_type": "normal", "shard": list(session.shard),
            "guilds": [{"id": str(g.id), "unavailable": True}
                       for g in self.guilds.values() if session.owns(g.id)],
            "application": {"id": str(self.application_id), "flags": 0}, "private_channels": [],
            "relationships": [], "presences": [], "user_settings": {}, "guild_join_requests": [],
            "geo_ordered_rtc_regions": [], "_trace": ["fake-discord"],
        }

    def guild_creates(self, session: GatewaySession) -> list[Json]:
        # Without the members intent Discord sends only the bot and members in voice (GUILD_CREATE docs).
        has_members = bool(session.intents & INTENT_GUILD_MEMBERS)
        result = []
        for guild in self.guilds.values():
            if not session.owns(guild.id):
                continue
            include = None if has_members else {self.bot_user.id, *guild.voice_states}
            result.append(payloads.guild_create(guild, include_members=include))
        return result

    def members_chunk(self, request: Json) -> Json:
        guild = self.guilds[int(request["guild_id"])]
        wanted = {int(u) for u in request.get("user_ids") or []}
        query = (request.get("query") or "").lower()
        members = [m for m in guild.members.values()
                   if (m.id in wanted if wanted else m.user.username.lower().startswith(query))]
        limit = int(request.get("limit") or 0)
        if limit:
            members = members[:limit]
        found = {m.id for m in members}
        return {"guild_id": str(guild.id), "members": [payloads.member(m) for m in members],
                "chunk_index": 0, "chunk_count": 1, "nonce": request.get("nonce"),
                "not_found": [str(u) for u in wanted - found]}

    # ---------- test actions ----------
    async def wait_ready(self, timeout: float = 10.0) -> GatewaySession:  # noqa: ASYNC109 - test deadline
        return await self.gateway.wait_ready(timeout)

    async def request_reconnect(self) -> None:
        await self.gateway.request_reconnect()

    async def drop_gateway(self, code: int = 4000) -> None:
        await self.gateway.drop(code)

    def refuse_gateway(self, refusing: bool = True) -> None:
        """While set, new gateway connections get HTTP 503 (an outage); unset, they work again."""
        self.gateway.refusing = refusing

    async def dispatch(self, event: str, data: Json, *, guild_id: int | None = None) -> int:
        return await self.gateway.dispatch(event, data, guild_id=guild_id)

    async def set_voice_state(self, guild_id: int, user_id: int, channel_id: int | None, *,
                              self_mute: bool = False, self_deaf: bool = False) -> None:
        await self.voice.set_state(guild_id, user_id, channel_id, self_mute=self_mute, self_deaf=self_deaf)

    async def move_voice_server(self, guild_id: int) -> None:
        """The bot's call moves to another voice server (call ``FakeVoiceServer.move`` first)."""
        await self.voice.move_voice_server(guild_id)

    @property
    def voice_state_updates(self) -> list[Json]:
        """Every op 4 the bot sent, in order."""
        return self.gateway.voice_state_updates

    async def invoke(self, *, guild_id: int, user_id: int, command: str,
                     options: dict[str, object] | None = None,
                     channel_id: int | None = None, locale: str = "en-US",
                     guild_command: bool | None = None) -> InteractionRecord:
        """Dispatch a slash command; ``command`` is "name", "name sub" or "name group sub"."""
        guild = self.guilds[guild_id]
        channel = guild.channels[channel_id] if channel_id is not None else guild.first_text_channel()
        payload = commands.command_interaction(self, guild=guild, channel=channel, user_id=user_id,
                                               command=command, options=options or {}, locale=locale,
                                               guild_command=guild_command)
        return await self._send_interaction(payload, original_message_id=None)

    async def click(self, message: InteractionRecord | Json | int, custom_id: str, *, user_id: int,
                    component_type: int = commands.BUTTON, values: list[str] | None = None,
                    locale: str = "en-US") -> InteractionRecord:
        """Press a component on a message (a record's response message, a message dict, or an id)."""
        if isinstance(message, InteractionRecord):
            if message.original is None:
                raise ValueError("that interaction has no response message to click on")
            message = message.original
        elif isinstance(message, int):
            message = self.messages.by_id[message]
        guild, channel = self.find_channel(int(message["channel_id"]))
        payload = commands.component_interaction(self, guild=guild, channel=channel, user_id=user_id,
                                                 message=message, custom_id=custom_id,
                                                 component_type=component_type, values=values, locale=locale)
        return await self._send_interaction(payload, original_message_id=int(message["id"]))

    async def _send_interaction(self, payload: Json, *, original_message_id: int | None) -> InteractionRecord:
        if not self.gateway.open_sessions:
            raise RuntimeError("no bot is connected to the fake gateway")
        record = self.interactions.open(id=int(payload["id"]), token=payload["token"], payload=payload,
                                        original_message_id=original_message_id)
        await self.gateway.dispatch("INTERACTION_CREATE", payload, guild_id=int(payload["guild_id"]))
        return record


@contextlib.contextmanager
def routed_to(fake: FakeDiscord | str, gateway_url: str | None = None) -> Iterator[None]:
    """Point discord.py at the fake (what the bot does from DISCORD_API_BASE_URL / DISCORD_GATEWAY_URL).

    Takes the fake, or an API base and gateway URL; restores both class attributes afterwards.
    """
    api_base = fake.api_base if isinstance(fake, FakeDiscord) else fake
    gateway = fake.gateway_url if isinstance(fake, FakeDiscord) else gateway_url
    assert gateway is not None
    old_base, old_gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)
    try:
        yield
    finally:
        discord.http.Route.BASE = old_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway
