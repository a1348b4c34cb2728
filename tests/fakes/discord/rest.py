"""The REST routes discord.py calls, plus the attachment CDN.

Anything not routed here answers 404 ``{"message": "404: Not Found", "code": 0}`` and lands in
``FakeDiscord.unhandled``, so a test can assert that the bot called nothing unexpected.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import payloads
from .interactions import ApiError
from .messages import UploadedFile
from .model import READ_MESSAGE_HISTORY, SEND_MESSAGES, VIEW_CHANNEL

if TYPE_CHECKING:
    from .server import FakeDiscord

Json = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
API = "/api/v10"


CDN_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    body: Any = None
    files: tuple[UploadedFile, ...] = field(default=())


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status, content_type="application/json")


def _error(status: int, code: int, message: str) -> web.Response:
    return _json({"message": message, "code": code}, status=status)


async def read_body(request: web.Request) -> tuple[Any, list[UploadedFile]]:
    """JSON body, or ``payload_json`` plus ``files[n]`` parts of a multipart body."""
    if request.content_type.startswith("multipart/"):
        body: Any = None
        files: list[UploadedFile] = []
        reader = await request.multipart()
        async for part in reader:
            if part.name == "payload_json":
                body = json.loads(await part.text())  # type: ignore[union-attr]
            elif part.name is not None:
                data = await part.read()  # type: ignore[union-attr]
                files.append(UploadedFile(field=part.name, filename=part.filename or part.name,
                                          data=bytes(data), content_type=part.headers.get("Content-Type")))
        return body, files
    if request.can_read_body:
        raw = await request.read()
        return (json.loads(raw) if raw else None), []
    return None, []


class RestApi:
    def __init__(self, fake: FakeDiscord) -> None:
        self._fake = fake
        self.requests: list[RecordedRequest] = []

    def install(self, app: web.Application) -> None:
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/users/@me", self.get_me),
            ("GET", "/users/{user_id:\\d+}", self.get_user),
            ("GET", "/oauth2/applications/@me", self.get_application),
            ("GET", "/applications/@me", self.get_application),
            ("GET", "/gateway", self.get_gateway),
            ("GET", "/gateway/bot", self.get_gateway_bot),
            ("GET", "/applications/{app:\\d+}/commands", self.get_commands),
            ("PUT", "/applications/{app:\\d+}/commands", self.put_commands),
            ("POST", "/applications/{app:\\d+}/commands", self.post_command),
            ("GET", "/applications/{app:\\d+}/guilds/{guild_id:\\d+}/commands", self.get_commands),
            ("PUT", "/applications/{app:\\d+}/guilds/{guild_id:\\d+}/commands", self.put_commands),
            ("POST", "/applications/{app:\\d+}/guilds/{guild_id:\\d+}/commands", self.post_command),
            ("POST", "/interactions/{id:\\d+}/{token}/callback", self.interaction_callback),
            ("POST", "/webhooks/{app:\\d+}/{token}", self.webhook_followup),
            ("GET", "/webhooks/{app:\\d+}/{token}/messages/{message}", self.webhook_get),
            ("PATCH", "/webhooks/{app:\\d+}/{token}/messages/{message}", self.webhook_edit),
            ("DELETE", "/webhooks/{app:\\d+}/{token}/messages/{message}", self.webhook_delete),
            ("GET", "/channels/{channel_id:\\d+}", self.get_channel),
            ("POST", "/channels/{channel_id:\\d+}/messages", self.post_message),
            ("GET", "/channels/{channel_id:\\d+}/messages/{message_id:\\d+}", self.get_message),
            ("PATCH", "/channels/{channel_id:\\d+}/messages/{message_id:\\d+}", self.edit_message),
            ("DELETE", "/channels/{channel_id:\\d+}/messages/{message_id:\\d+}", self.delete_message),
            ("PATCH", "/guilds/{guild_id:\\d+}/members/@me", self.edit_my_member),
            ("GET", "/guilds/{guild_id:\\d+}/members/{user_id:\\d+}", self.get_member),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, API + path, self._wrap(handler))
        app.router.add_get("/attachments/{tail:.*}", self.cdn)
        # Registered last: aiohttp tries resources in order, so this only sees what nothing else took.
        app.router.add_route("*", "/{tail:.*}", self.unknown)

    def _wrap(self, handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            if not self._authorized(request):
                return _error(401, 0, "401: Unauthorized")
            try:
                return await handler(request)
            except ApiError as exc:
                return _error(exc.status, exc.code, exc.message)
            except KeyError:
                return _error(404, 10003, "Unknown resource")

        return wrapped

    def _authorized(self, request: web.Request) -> bool:
        # Webhook-token routes carry their own credential; everything else needs "Bot <token>".
        if request.path.startswith((API + "/webhooks/", API + "/interactions/")):
            return True
        header = request.headers.get("Authorization", "")
        return header.startswith("Bot ") and self._fake.token_ok(header[4:])

    async def _record(self, request: web.Request) -> tuple[Any, list[UploadedFile]]:
        body, files = await read_body(request)
        self.requests.append(RecordedRequest(request.method, request.path, dict(request.query), body,
                                             tuple(files)))
        return body, files

    # ---------- identity ----------
    async def get_me(self, request: web.Request) -> web.Response:
        await self._record(request)
        return _json(payloads.user(self._fake.bot_user))

    async def get_user(self, request: web.Request) -> web.Response:
        await self._record(request)
        return _json(payloads.user(self._fake.users[int(request.match_info["user_id"])]))

    async def get_application(self, request: web.Request) -> web.Response:
        await self._record(request)
        fake = self._fake
        return _json(payloads.application(fake.application_id, fake.owner, fake.bot_user.username))

    async def get_gateway(self, request: web.Request) -> web.Response:
        await self._record(request)
        return _json({"url": self._fake.gateway_url})

    async def get_gateway_bot(self, request: web.Request) -> web.Response:
        await self._record(request)
        limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
        return _json({"url": self._fake.gateway_url, "shards": self._fake.recommended_shards,
                      "session_start_limit": limit})

    # ---------- application commands ----------
    def _scope(self, request: web.Request) -> int | None:
        guild_id = request.match_info.get("guild_id")
        return None if guild_id is None else int(guild_id)

    async def get_commands(self, request: web.Request) -> web.Response:
        await self._record(request)
        return _json(self._fake.commands.get(self._scope(request), []))

    async def put_commands(self, request: web.Request) -> web.Response:
        body, _ = await self._record(request)
        scope = self._scope(request)
        self._fake.commands[scope] = [self._stored_command(c, scope) for c in body or []]
        self._fake.command_syncs.append((scope, body or []))
        return _json(self._fake.commands[scope])

    async def post_command(self, request: web.Request) -> web.Response:
        body, _ = await self._record(request)
        scope = self._scope(request)
        stored = self._stored_command(body, scope)
        others = [c for c in self._fake.commands.get(scope, []) if c["name"] != stored["name"]]
        self._fake.commands[scope] = [*others, stored]
        return _json(stored, status=201)

    def _stored_command(self, command: Json, scope: int | None) -> Json:
        # Discord keeps a command's id across syncs when its name and type stay the same.
        previous = {(c["name"], c.get("type", 1)): c for c in self._fake.commands.get(scope, [])}
        old = previous.get((command["name"], command.get("type", 1)))
        stored = {"type": 1, "description": "", "options": [], "default_member_permissions": None,
                  "nsfw": False, **command}
        stored.update(id=old["id"] if old else str(self._fake.snowflakes.next()),
                      application_id=str(self._fake.application_id),
                      version=str(self._fake.snowflakes.next()))
        if scope is not None:
            stored["guild_id"] = str(scope)
        return stored

    # ---------- interactions and their webhooks ----------
    async def interaction_callback(self, request: web.Request) -> web.Response:
        body, files = await self._record(request)
        result = self._fake.interactions.callback(int(request.match_info["id"]), request.match_info["token"],
                                                  body or {}, files)
        # discord.py always asks ?with_response=1; without it Discord answers 204.
        if request.query.get("with_response") in ("1", "true", "True"):
            return _json(result)
        return web.Response(status=204)

    async def webhook_followup(self, request: web.Request) -> web.Response:
        body, files = await self._record(request)
        return _json(self._fake.interactions.followup(request.match_info["token"], body or {}, files))

    async def webhook_get(self, request: web.Request) -> web.Response:
        await self._record(request)
        return _json(self._fake.interactions.get(request.match_info["token"], request.match_info["message"]))

    async def webhook_edit(self, request: web.Request) -> web.Response:
        body, files = await self._record(request)
        token, message = request.match_info["token"], request.match_info["message"]
        return _json(self._fake.interactions.edit(token, message, body or {}, files))

    async def webhook_delete(self, request: web.Request) -> web.Response:
        await self._record(request)
        self._fake.interactions.delete(request.match_info["token"], request.match_info["message"])
        return web.Response(status=204)

    # ---------- channels, messages, members ----------
    async def get_channel(self, request: web.Request) -> web.Response:
        await self._record(request)
        guild, channel = self._fake.find_channel(int(request.match_info["channel_id"]))
        return _json(payloads.channel(channel))

    async def post_message(self, request: web.Request) -> web.Response:
        body, files = await self._record(request)
        channel_id = int(request.match_info["channel_id"])
        guild, _channel = self._fake.find_channel(channel_id)
        bot_id = self._fake.bot_user.id
        if bot_id in guild.members:
            # As Discord: without View Channel and Send Messages there, 403 Missing Permissions.
            needed = VIEW_CHANNEL | SEND_MESSAGES
            if guild.permissions_for(bot_id, channel_id) & needed != needed:
                raise ApiError(403, 50013, "Missing Permissions")
        limited = self._message_rate_limited(channel_id)
        if limited is not None:
            return limited
        message = self._fake.messages.create(channel_id, body or {}, files)
        self._fake.sent_messages.append(message)
        await self._fake.gateway.dispatch("MESSAGE_CREATE", message, guild_id=int(message["guild_id"]))
        return _json(message)

    def _message_rate_limited(self, channel_id: int) -> web.Response | None:
        """Discord's per-channel send limit (5 messages per 5 s), when the test turns it on."""
        limit = self._fake.channel_message_limit
        if limit is None:
            return None
        count, per = limit
        now = time.monotonic()
        sent = [t for t in self._fake.channel_message_times.get(channel_id, []) if now - t < per]
        if len(sent) >= count:
            retry_after = per - (now - sent[0])
            self._fake.rate_limited_messages.append(channel_id)
            return web.Response(
                body=json.dumps({"message": "You are being rate limited.", "retry_after": retry_after,
                                 "global": False}).encode(),
                status=429, content_type="application/json",
                headers={"Retry-After": f"{retry_after:.3f}", "X-RateLimit-Limit": str(count),
                         "X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                         "X-RateLimit-Bucket": f"channel-messages-{channel_id}", "X-RateLimit-Scope": "user"},
            )
        sent.append(now)
        self._fake.channel_message_times[channel_id] = sent
        return None

    def _channel_message(self, request: web.Request, *, needed: int = VIEW_CHANNEL) -> Json:
        channel_id = int(request.match_info["channel_id"])
        guild, _channel = self._fake.find_channel(channel_id)
        bot_id = self._fake.bot_user.id
        if bot_id in guild.members:
            # As Discord: no View Channel there is 403 Missing Access; reading a message also needs
            # Read Message History (403 Missing Permissions without it).
            granted = guild.permissions_for(bot_id, channel_id)
            if not granted & VIEW_CHANNEL:
                raise ApiError(403, 50001, "Missing Access")
            if granted & needed != needed:
                raise ApiError(403, 50013, "Missing Permissions")
        message = self._fake.messages.by_id.get(int(request.match_info["message_id"]))
        if message is None or message["channel_id"] != request.match_info["channel_id"]:
            raise ApiError(404, 10008, "Unknown Message")
        return message

    async def get_message(self, request: web.Request) -> web.Response:
        await self._record(request)
        return _json(self._channel_message(request, needed=VIEW_CHANNEL | READ_MESSAGE_HISTORY))

    async def edit_message(self, request: web.Request) -> web.Response:
        body, files = await self._record(request)
        return _json(self._fake.messages.edit(self._channel_message(request), body or {}, files))

    async def delete_message(self, request: web.Request) -> web.Response:
        await self._record(request)
        message = self._channel_message(request)
        self._fake.messages.by_id.pop(int(message["id"]))
        return web.Response(status=204)

    async def edit_my_member(self, request: web.Request) -> web.Response:
        body, _ = await self._record(request)
        guild = self._fake.guilds[int(request.match_info["guild_id"])]
        me = guild.members[self._fake.bot_user.id]
        if body and "nick" in body:
            me.nick = body["nick"] or None
        data = payloads.member(me)
        await self._fake.gateway.dispatch("GUILD_MEMBER_UPDATE", {**data, "guild_id": str(guild.id)},
                                          guild_id=guild.id)
        return _json(data)

    async def get_member(self, request: web.Request) -> web.Response:
        await self._record(request)
        guild = self._fake.guilds[int(request.match_info["guild_id"])]
        member = guild.members.get(int(request.match_info["user_id"]))
        if member is None:
            raise ApiError(404, 10007, "Unknown Member")
        return _json(payloads.member(member))

    # ---------- CDN and the rest ----------
    async def cdn(self, request: web.Request) -> web.StreamResponse:
        obj = self._fake.cdn.get(request.path)
        if obj is None:
            return await self.unknown(request)
        # Passed as a raw header: content_type= refuses parameters such as "; codecs=opus".
        content_type = obj.content_type or "application/octet-stream"
        # Streamed in pieces, as a CDN does, counting what the client took: a download that
        # stops at the size limit shows here as far fewer bytes sent than the file holds.
        response = web.StreamResponse(headers={"Content-Type": content_type})
        response.content_length = len(obj.data)
        await response.prepare(request)
        delivered = _Delivered(request.transport)
        cdn = self._fake.cdn
        cdn.sent[request.path] = 0
        try:
            for offset in range(0, len(obj.data), CDN_CHUNK):
                await response.write(obj.data[offset:offset + CDN_CHUNK])
                cdn.sent[request.path] = delivered.bytes()
            await response.write_eof()
        except ConnectionError:
            pass  # the client closed the download early
        cdn.sent[request.path] = delivered.bytes()
        return response

    async def unknown(self, request: web.Request) -> web.Response:
        body, files = await read_body(request)
        self._fake.unhandled.append(RecordedRequest(request.method, request.path, dict(request.query), body,
                                                    tuple(files)))
        return _error(404, 0, "404: Not Found")


class _Delivered:
    """Bytes of one response the client's TCP acknowledged: what it can have received, exactly.

    Counting what was handed to ``response.write`` is not that. Once the client closes, the TLS
    layer turns further writes into silent no-ops while ``is_closing()`` still says False, and
    without a paused buffer ``write`` never yields: the loop would count the rest of a 50 MB file
    in one go (the lying-size test failed ~1 run in 6 that way). The kernel's
    ``tcpi_bytes_acked`` (Linux ``TCP_INFO``) counts only bytes the peer acknowledged; it includes
    TLS framing and the response headers, a few hundred bytes per MB.
    """

    _BYTES_ACKED_OFFSET = 120  # struct tcp_info: 8 one-byte fields, 24 u32s, 2 u64 pacing rates

    def __init__(self, transport: Any) -> None:
        self._socket = transport.get_extra_info("socket") if transport is not None else None
        self._start = self._read()
        self._last = 0

    def _read(self) -> int | None:
        if self._socket is None or not hasattr(socket, "TCP_INFO"):
            raise RuntimeError("the fake CDN counts delivered bytes with Linux TCP_INFO")
        try:
            info = self._socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
        except OSError:
            return None  # closed: the last reading stands
        return int(struct.unpack_from("<Q", info, self._BYTES_ACKED_OFFSET)[0])

    def bytes(self) -> int:
        now = self._read()
        if now is not None and self._start is not None:
            self._last = now - self._start
        return self._last
