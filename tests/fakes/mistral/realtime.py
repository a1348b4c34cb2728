"""The realtime transcription WebSocket: ``/v1/audio/transcriptions/realtime?model=...``.

Protocol as the SDK speaks it (``mistralai/extra/realtime/``): the server opens with
``session.created``; the client may send ``session.update`` (answered by ``session.updated``),
then ``input_audio.append`` (base64 audio), ``input_audio.flush`` and ``input_audio.end``. The
fake answers a flush with the text deltas it can already vouch for, and ``input_audio.end`` with
the remaining deltas and ``transcription.done``; the socket then stays open until the client closes.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import TYPE_CHECKING, Any

import aiohttp
import pydantic
from aiohttp import WSMsgType, web
from mistralai.client import models
from mistralai.extra.realtime.connection import UnknownRealtimeEvent, parse_realtime_event

from .common import FAULT_KEY, RequestRejected, decode_base64, validation_failure
from .sse import tokens_of
from .state import Fault, RealtimeSession, RecordedRequest

if TYPE_CHECKING:
    from .server import FakeMistral

# Rates the API documents for realtime PCM input.
SAMPLE_RATES = frozenset({8000, 16000, 22050, 44100, 48000})

_CLIENT_MESSAGES: dict[str, type[pydantic.BaseModel]] = {
    "session.update": models.RealtimeTranscriptionSessionUpdateMessage,
    "input_audio.append": models.RealtimeTranscriptionInputAudioAppend,
    "input_audio.flush": models.RealtimeTranscriptionInputAudioFlush,
    "input_audio.end": models.RealtimeTranscriptionInputAudioEnd,
}


class _Closed(Exception):
    """The fake closed the socket on purpose (an injected fault)."""


class _Stream:
    """One open socket: its session state and what it has already told the client."""

    def __init__(self, fake: FakeMistral, ws: web.WebSocketResponse, record: RealtimeSession,
                 fault: Fault | None, model: str) -> None:
        self.fake = fake
        self.ws = ws
        self.record = record
        self.fault = fault if fault is not None and fault.kind in ("ws_close", "ws_error") else None
        self.emitted = ""
        self.language_sent = False
        self.ended = False
        self.session: dict[str, Any] = {
            "request_id": uuid.uuid4().hex,
            "model": model,
            "audio_format": {"encoding": "pcm_s16le", "sample_rate": 16000},
        }

    async def send(self, event: dict[str, Any]) -> None:
        # The fake must never emit what the SDK itself would not parse.
        parsed = parse_realtime_event(event)
        assert not isinstance(parsed, UnknownRealtimeEvent), parsed.error
        self.record.sent.append(event)
        await self.ws.send_str(json.dumps(event))

    async def error(self, message: str, code: int) -> None:
        await self.send({"type": "error", "error": {"message": message, "code": code}})

    async def on_message(self, message: dict[str, Any]) -> None:
        arrived = time.monotonic()
        kind = message.get("type")
        model_cls = _CLIENT_MESSAGES.get(str(kind))
        if model_cls is None:
            await self.error(f"unknown message type {kind!r}", 400)
            return
        try:
            parsed = model_cls.model_validate(message)
        except pydantic.ValidationError as exc:
            await self.error(f"invalid {kind}: {exc.errors()[0]['msg']}", 422)
            return
        if self.ended and kind != "session.update":
            await self.error(f"{kind} after input_audio.end", 400)
            return
        if isinstance(parsed, models.RealtimeTranscriptionSessionUpdateMessage):
            await self._update_session(parsed)
        elif isinstance(parsed, models.RealtimeTranscriptionInputAudioAppend):
            await self._append(parsed.audio)
        elif isinstance(parsed, models.RealtimeTranscriptionInputAudioFlush):
            await self._emit_deltas(final=False)
        else:
            self.ended = True
            # From the end message's arrival, as the other endpoints count their latency.
            await self.fake.delay(self.fake.latency.stt_final, until=arrived + self.fake.latency.stt_final)
            await self._emit_deltas(final=True)

    async def _update_session(self, message: models.RealtimeTranscriptionSessionUpdateMessage) -> None:
        update = message.session.model_dump(mode="json", by_alias=True)
        audio_format = update.get("audio_format")
        if audio_format is not None:
            if audio_format.get("sample_rate") not in SAMPLE_RATES:
                await self.error(f"unsupported sample_rate {audio_format.get('sample_rate')}", 422)
                return
            if self.record.audio:
                await self.error("audio_format cannot change after audio was sent", 400)
                return
        self.session.update({key: value for key, value in update.items() if value is not None})
        await self.send({"type": "session.updated", "session": self.session})

    async def _append(self, audio_b64: str) -> None:
        try:
            chunk = decode_base64(audio_b64, "audio")
        except RequestRejected:
            await self.error("audio is not valid base64", 422)
            return
        self.record.record_append(chunk)
        fault = self.fault
        if fault is not None and self.record.appends >= fault.after:
            self.fault = None
            if fault.kind == "ws_close":
                await self.ws.close(code=fault.code, message=b"injected close")
                raise _Closed
            await self.error(fault.message, fault.code)

    async def _emit_deltas(self, *, final: bool) -> None:
        text = self.fake.transcribe(bytes(self.record.audio))
        if text and not self.language_sent:
            self.language_sent = True
            await self.send({"type": "transcription.language", "audio_language": self.fake.language})
        # Only text that extends what was already said can be streamed; a revised hypothesis
        # shows up in transcription.done alone, as with a real streaming recogniser.
        if text.startswith(self.emitted):
            for index, token in enumerate(tokens_of(text[len(self.emitted):])):
                if index or self.emitted:
                    await self.fake.delay(self.fake.latency.realtime_delta_interval)
                self.emitted += token
                await self.send({"type": "transcription.text.delta", "text": token})
        if final:
            seconds = self._audio_seconds()
            await self.send({
                "type": "transcription.done", "model": self.session["model"], "text": text,
                "language": self.fake.language if text else None, "segments": [],
                "usage": {"prompt_audio_seconds": round(seconds), "prompt_tokens": 0,
                          "completion_tokens": len(text.split()), "total_tokens": len(text.split())},
            })

    def _audio_seconds(self) -> float:
        audio_format = self.session["audio_format"]
        widths = {"pcm_s16le": 2, "pcm_s32le": 4, "pcm_f32le": 4, "pcm_f16le": 2}
        width = widths.get(audio_format["encoding"], 1)
        return len(self.record.audio) / (width * audio_format["sample_rate"])


class RealtimeHandler:
    def __init__(self, fake: FakeMistral) -> None:
        self._fake = fake
        self._sockets: set[web.WebSocketResponse] = set()

    async def close_all(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"server shutting down")

    async def handle(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        fake = self._fake
        model = request.query.get("model")
        if not model:
            raise validation_failure("query parameter model is required")
        ws = web.WebSocketResponse(heartbeat=None, autoping=True)
        await ws.prepare(request)
        record.status = 101
        session = RealtimeSession(record)
        await fake._session_opened(session)
        fault: Fault | None = request.get(FAULT_KEY)
        self._sockets.add(ws)
        stream = _Stream(fake, ws, session, fault, model)
        # Reading never waits for processing (latency, stalls): like a real server, the socket
        # keeps answering pings and close frames while the "model" is busy.
        inbox: asyncio.Queue[aiohttp.WSMessage] = asyncio.Queue()
        stall = fault is not None and fault.kind == "stall"
        processor = asyncio.create_task(self._process(stream, inbox, stall=stall))
        try:
            async for message in ws:
                inbox.put_nowait(message)
                if processor.done():
                    break
        except ConnectionResetError:
            pass
        finally:
            processor.cancel()
            await asyncio.gather(processor, return_exceptions=True)
            self._sockets.discard(ws)
            session.closed.set()
        return ws

    async def _process(
        self, stream: _Stream, inbox: asyncio.Queue[aiohttp.WSMessage], *, stall: bool
    ) -> None:
        if stall:
            await self._fake.stall()
            return
        try:
            await stream.send({"type": "session.created", "session": stream.session})
            while True:
                message = await inbox.get()
                if message.type == WSMsgType.TEXT:
                    await self._on_text(stream, message.data)
                elif message.type == WSMsgType.BINARY:
                    await stream.error("binary frames are not accepted; send input_audio.append", 400)
        except (_Closed, ConnectionResetError):
            pass

    async def _on_text(self, stream: _Stream, data: str) -> None:
        try:
            payload = json.loads(data)
        except json.JSONDecodeError:
            await stream.error("message is not JSON", 400)
            return
        stream.record.messages.append(payload if isinstance(payload, dict) else {"type": None})
        if not isinstance(payload, dict):
            await stream.error("message must be a JSON object", 400)
            return
        await stream.on_message(payload)
