"""A loopback Mistral API that the real ``mistralai`` SDK talks to.

Start it, then point the SDK at it::

    async with FakeMistral(certificates) as fake:
        client = Mistral(api_key=fake.api_key, server_url=fake.url)  # with SSL_CERT_FILE=ca_file

It serves HTTPS and WSS only, as ``https://api.mistral.ai`` does: the SDK's realtime client derives
``wss://`` from an ``https://`` server URL (``RealtimeTranscription.connect``), so the client under
test pays the TLS handshakes and record encryption it pays in production and verifies the
certificate against the test CA (``tests/fakes/tls.py``), never with verification turned off.
Pass the fake Discord's ``TestCertificates`` so one CA (one ``SSL_CERT_FILE``) covers both fakes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pydantic
from aiohttp import web
from mistralai.client import models

from tests.fakes.tls import TestCertificates, make_test_certificates

from .audio import SpeechCache, default_transcript, read_wav
from .common import FAULT_KEY, RequestRejected, message_text, validation_failure
from .realtime import RealtimeHandler
from .sse import ChatHandler, SpeechHandler
from .state import Endpoint, Faults, Latency, RealtimeSession, RecordedRequest
from .turns import TurnModel
from .voices import CustomVoice, VoicesHandler

log = logging.getLogger(__name__)

Transcribe = Callable[[bytes], str]
Reply = Callable[[list[dict[str, Any]]], str]
Sleep = Callable[[float], Awaitable[None]]
_Handler = Callable[[web.Request, RecordedRequest], Awaitable[web.StreamResponse]]


def default_reply(messages: list[dict[str, Any]]) -> str:
    """Echo the last user message, so a test can tell which request produced which reply."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return f"You said: {message_text(message)}"
    return "Hello."


class FakeMistral:
    """The fake API server. All knobs are plain attributes a test may set at any time."""

    def __init__(self, certificates: TestCertificates | None = None, *,
                 api_key: str = "fake-mistral-key-0123456789abcdef", tts_chunk_bytes: int = 6001,
                 sleep: Sleep = asyncio.sleep, keepalive_timeout: float = 75.0) -> None:
        """``certificates``: the CA the clients trust; without it the fake makes its own (then read
        ``certificates`` for the CA a client must be given)."""
        self.certificates = certificates or make_test_certificates(Path(tempfile.mkdtemp(prefix="fake-mistral-tls-")))
        self.api_key = api_key
        self.keepalive_timeout = keepalive_timeout
        """Seconds before the fake closes an idle keep-alive connection, as servers do (75 s is
        nginx's default; aiohttp's own is an hour). Read at ``start``."""
        self.latency = Latency()
        self.faults = Faults()
        self.requests: list[RecordedRequest] = []
        self.realtime_sessions: list[RealtimeSession] = []
        self.transcribe: Transcribe = default_transcript
        """Text for received audio: 16-bit PCM frames for WAV uploads, the raw bytes otherwise."""
        self.reply: Reply = default_reply
        """Chat reply text for a request's ``messages`` (the JSON dicts as sent)."""
        self.language = "en"
        self.turns = TurnModel()
        """Voxtral 3 realtime behaviour: turn timing, speech detector, streaming delay, jitter."""
        self.tts_seconds_per_character: float | None = None
        """``None`` uses ``audio.SECONDS_PER_CHARACTER``."""
        self.tts_chunk_bytes = tts_chunk_bytes
        """Streamed speech chunk size; odd by default so clients must handle split float32 samples.
        ``opus`` is streamed by duration instead: each event carries the Ogg pages of as much
        audio as a ``pcm`` chunk of this size (62.5 ms), on the same schedule."""
        self.tts_opus_frame_ms: float = 20
        """Opus frame duration of ``opus`` speech (20 ms, as a real-time TTS would; 40 or 60 is
        what a server tuned for bitrate might send)."""
        self.tts_refused_formats: set[str] = set()
        """Speech ``response_format``s answered with 422, as a server that only does pcm would."""
        self.speech_cache = SpeechCache()
        """Encoded speech per (text, pace, format, frame): the real service's encoding cost is not
        the bot's, and the benchmark's fakes share the machine's cores with the bot."""
        self.sleep = sleep
        self.random = random.Random(0)
        """Seeded randomness for ``latency.tts_jitter``, so a run can be repeated."""
        self.voice_creation_refused: int | None = None
        """Refuse ``POST /v1/audio/voices`` with this status (402/403), as a free plan does."""
        self.echo_auth_in_errors = False
        """Quote the request's Authorization header in error bodies, as a careless proxy might."""
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._sessions_changed = asyncio.Condition()
        self._chat = ChatHandler(self)
        self._speech = SpeechHandler(self)
        self._voices = VoicesHandler(self)
        self._realtime = RealtimeHandler(self)

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The SDK's ``server_url``: scheme, host and port, without ``/v1``."""
        if self._port is None:
            raise RuntimeError("FakeMistral is not started")
        return f"https://127.0.0.1:{self._port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._wrap("chat", self._chat.handle))
        app.router.add_post("/v1/audio/speech", self._wrap("speech", self._speech.handle))
        app.router.add_post("/v1/audio/voices", self._wrap("voices", self._voices.create))
        app.router.add_get("/v1/audio/voices", self._wrap("voices", self._voices.list))
        app.router.add_get("/v1/audio/voices/{voice_id}", self._wrap("voices", self._voices.get))
        app.router.add_delete("/v1/audio/voices/{voice_id}", self._wrap("voices", self._voices.delete))
        batch = self._wrap("transcriptions", self._batch_transcription)
        app.router.add_post("/v1/audio/transcriptions", batch)
        app.router.add_get("/v1/audio/transcriptions/realtime", self._wrap("realtime", self._realtime.handle))
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None,
                                     keepalive_timeout=self.keepalive_timeout)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.certificates.server_context())
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def close(self) -> None:
        self._closing.set()
        await self._realtime.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeMistral:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- assertions helpers ----------------------------------------------------------------------

    @property
    def voices(self) -> dict[str, CustomVoice]:
        """Custom voices that exist now, by id (created and not deleted)."""
        return self._voices.voices

    def knows_voice(self, voice_id: str) -> bool:
        return self._voices.is_known(voice_id)

    @property
    def open_connections(self) -> int:
        """HTTP connections the fake holds open now (busy or idle keep-alive), not those it is closing.

        Closing a TLS connection sends close_notify at once (what the client sees), then asyncio
        waits up to 30 s for the client's own close_notify before the connection counts as lost."""
        if self._runner is None or self._runner.server is None:
            return 0
        return sum(1 for handler in self._runner.server.connections
                   if handler.transport is not None and not handler.transport.is_closing())

    def requests_to(self, endpoint: Endpoint) -> list[RecordedRequest]:
        return [request for request in self.requests if request.endpoint == endpoint]

    async def wait_for_realtime_session(self, index: int = 0) -> RealtimeSession:
        """The ``index``-th realtime session, waiting until the client has opened it."""
        async with self._sessions_changed:
            await self._sessions_changed.wait_for(lambda: len(self.realtime_sessions) > index)
        return self.realtime_sessions[index]

    async def _session_opened(self, session: RealtimeSession) -> None:
        async with self._sessions_changed:
            self.realtime_sessions.append(session)
            self._sessions_changed.notify_all()

    async def stall(self) -> None:
        """Hold a handler open until the fake shuts down."""
        await self._closing.wait()

    async def delay(self, seconds: float, *, until: float | None = None) -> None:
        """Injected latency through ``sleep``, cut short when the fake shuts down.

        ``until`` (a ``time.monotonic()`` instant, e.g. ``received_at`` + latency): with real time,
        sleep only until then, so the fake's own work (validating, synthesising audio, sending
        earlier chunks) never adds to the injected latency. An injected ``sleep`` gets ``seconds``."""
        if until is not None and self.sleep is asyncio.sleep:
            seconds = until - time.monotonic()
        if seconds <= 0:
            return
        sleeper = asyncio.ensure_future(self.sleep(seconds))
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({sleeper, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            closing.cancel()

    # -- common request handling -----------------------------------------------------------------

    def _wrap(
        self, endpoint: Endpoint, handler: _Handler
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            record = RecordedRequest(endpoint, request.method, request.path, dict(request.query), {})
            self.requests.append(record)
            record.peer = request.transport.get_extra_info("peername") if request.transport else None
            record.authorized = request.headers.get("Authorization") == f"Bearer {self.api_key}"
            try:
                if not record.authorized:
                    raise RequestRejected(401, {"message": "Unauthorized", "request_id": uuid.uuid4().hex})
                fault = self.faults.take(endpoint)
                if fault is not None and fault.kind == "status":
                    headers = {}
                    if fault.retry_after is not None:
                        headers["Retry-After"] = _format_seconds(fault.retry_after)
                    record.status = fault.status
                    body = {"object": "error", "message": "injected fault", "type": "service_unavailable",
                            "code": str(fault.status)}
                    return web.json_response(self._error_body(request, body), status=fault.status,
                                             headers=headers)
                if fault is not None and fault.kind == "stall" and endpoint != "realtime":
                    await self.stall()
                    return web.Response(status=503)
                if fault is not None:
                    request[FAULT_KEY] = fault
                response = await handler(request, record)
            except RequestRejected as rejected:
                record.status = rejected.status
                return web.json_response(self._error_body(request, rejected.body), status=rejected.status)
            if record.status is None and not isinstance(response, web.WebSocketResponse):
                record.status = response.status
            return response

        return handle

    def _error_body(self, request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
        if self.echo_auth_in_errors:
            return {**body, "request_headers": {"Authorization": request.headers.get("Authorization")}}
        return body

    async def read_json(self, request: web.Request, record: RecordedRequest) -> dict[str, Any]:
        raw = await request.read()
        record.body_bytes = len(raw)
        uplink = self.latency.uplink_bits_per_s
        record.upload_seconds = 0.0 if uplink is None else len(raw) * 8 / uplink
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise validation_failure("body is not JSON") from None
        if not isinstance(body, dict):
            raise validation_failure("body must be a JSON object")
        record.body = body
        return body

    # -- batch transcription ---------------------------------------------------------------------

    async def _batch_transcription(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        form = await request.post()
        fields: dict[str, Any] = {}
        for name, value in form.items():
            if isinstance(value, web.FileField):
                fields[name] = {"fileName": value.filename, "": value.file.read(),
                                "Content-Type": value.content_type}
            elif name.endswith("[]"):
                fields.setdefault(name[:-2], []).append(value)
            else:
                fields[name] = _form_scalar(value)
        record.body = fields
        try:
            parsed = models.AudioTranscriptionRequest.model_validate(fields)
        except pydantic.ValidationError as error:
            raise validation_failure(error) from None
        if parsed.file is None:
            raise validation_failure("file is required (file_url and file_id are not supported by the fake)")
        content = parsed.file.content
        assert isinstance(content, bytes)
        pcm, seconds = _decode_upload(content)
        stt_batch = self.latency.stt_batch
        await self.delay(self.latency.stt_final if stt_batch is None else stt_batch)
        text = self.transcribe(pcm)
        return web.json_response({
            "model": parsed.model,
            "text": text,
            "language": self.language,
            "segments": [],
            "usage": {"prompt_audio_seconds": round(seconds), "prompt_tokens": 0,
                      "completion_tokens": len(text.split()), "total_tokens": len(text.split())},
        })


def _form_scalar(value: str) -> Any:
    if value in ("true", "false"):
        return value == "true"
    return value


def _decode_upload(content: bytes) -> tuple[bytes, float]:
    """(bytes handed to ``transcribe``, audio seconds) for an uploaded file."""
    if content[:4] == b"RIFF":
        try:
            frames, rate, channels = read_wav(content)
        except Exception:
            raise validation_failure("file is not a readable 16-bit WAV") from None
        return frames, len(frames) / (2 * channels * rate)
    return content, 0.0


def _format_seconds(seconds: float) -> str:
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return text if re.fullmatch(r"\d+(\.\d+)?", text) else "1"
