"""The realtime transcription WebSocket: ``/v1/audio/transcriptions/realtime?model=...``.

Protocol as the SDK speaks it (``mistralai/extra/realtime/``): the server opens with
``session.created``; the client may send ``session.update`` (answered by ``session.updated``),
then ``input_audio.append`` (base64 audio), ``input_audio.flush`` and ``input_audio.end``. The
fake answers a flush with the text deltas it can already vouch for, and ``input_audio.end`` with
the remaining deltas and ``transcription.done``; the socket then stays open until the client closes.

Voxtral 3 semantics (``turns.py``): while audio streams, text deltas follow their audio at the
session's ``target_streaming_delay_ms`` and, with ``turn_detection`` set, turn events follow one
encoder frame later, both with jitter. On a Voxtral 3 model every setting locks at the first audio
chunk (a later ``session.update`` is an error event); other models refuse ``turn_detection``.
A refused ``session.update`` changes nothing and leaves the socket open.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
import pydantic
from aiohttp import WSMsgType, web
from mistralai.client import models
from mistralai.extra.realtime.connection import UnknownRealtimeEvent, parse_realtime_event

from .common import FAULT_KEY, RequestRejected, decode_base64, validation_failure
from .sse import tokens_of
from .state import Fault, RealtimeSession, RecordedRequest
from .turns import (
    TurnModel,
    TurnSettings,
    TurnTracker,
    bytes_per_second,
    is_speech,
    is_voxtral_3_realtime,
    validate_turn_detection,
)

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
        self.voxtral_3 = is_voxtral_3_realtime(model)
        self.turns: TurnModel = fake.turns
        self.emitted = ""
        self.language_sent = False
        self.ended = False
        self.session: dict[str, Any] = {
            "request_id": uuid.uuid4().hex,
            "model": model,
            "audio_format": {"encoding": "pcm_s16le", "sample_rate": 16000},
        }
        # Streaming analysis, in audio time: frames analysed so far and the turn state machine.
        record.settings = dict(self.session)
        self.tracker: TurnTracker | None = None
        self.analysed = 0
        self.frames = 0
        self.speech_frames = 0
        self.was_speech = False
        self.hypothesis: str | None = None
        """Text for the audio analysed so far; reused until more speech arrives (silence adds no words)."""
        # Streamed events wait in two lanes, each in due order: turn events come one encoder
        # frame after their audio, text at the session's streaming delay (so later).
        self.turn_lane: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()
        self.text_lane: asyncio.Queue[tuple[float, str]] = asyncio.Queue()
        self.last_due = {"turn": 0.0, "text": 0.0}
        self.hurry = asyncio.Event()
        self.send_lock = asyncio.Lock()
        self.rng = random.Random(len(fake.realtime_sessions))

    async def send(self, event: dict[str, Any]) -> None:
        # The fake must never emit what the SDK itself would not parse.
        parsed = parse_realtime_event(event)
        assert not isinstance(parsed, UnknownRealtimeEvent), parsed.error
        async with self.send_lock:
            self.record.sent.append(event)
            self.record.sent_at.append(time.monotonic())
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
            await self._update_session(message.get("session") or {})
        elif isinstance(parsed, models.RealtimeTranscriptionInputAudioAppend):
            await self._append(parsed.audio, arrived)
        elif isinstance(parsed, models.RealtimeTranscriptionInputAudioFlush):
            await self._emit_deltas(final=False)
        else:
            self.ended = True
            # Decided turn events go out now; streamed text is superseded by the final text.
            self.hurry.set()
            await self.turn_lane.join()
            await self.text_lane.join()
            # From the end message's arrival, as the other endpoints count their latency.
            await self.fake.delay(self.fake.latency.stt_final, until=arrived + self.fake.latency.stt_final)
            await self._emit_deltas(final=True)

    # -- session settings ------------------------------------------------------------------------

    async def _update_session(self, update: dict[str, Any]) -> None:
        """Apply a ``session.update`` (as sent: only the fields the client set) or refuse it whole."""
        refusal = self._refusal(update)
        if refusal is not None:
            await self.error(*refusal)
            return
        for key, value in update.items():
            if value is None:
                self.session.pop(key, None)
            elif key == "speaker_references":
                self.session[key] = sorted(value)  # the session echoes names only
            else:
                self.session[key] = value
        self.record.settings = dict(self.session)
        await self.send({"type": "session.updated", "session": self.session})

    def _refusal(self, update: dict[str, Any]) -> tuple[str, int] | None:
        if self.record.audio and self.voxtral_3:
            # Voxtral 3 locks every setting at the first audio chunk ("Migrate from Voxtral 2").
            return "Session fields cannot be changed after audio has started.", 400
        audio_format = update.get("audio_format")
        if audio_format is not None:
            if audio_format.get("sample_rate") not in SAMPLE_RATES:
                return f"unsupported sample_rate {audio_format.get('sample_rate')}", 422
            if self.record.audio:
                return "audio_format cannot change after audio was sent", 400
        delay = update.get("target_streaming_delay_ms")
        if delay is not None and not (80 <= delay <= 1200 or delay == 2400):
            return "target_streaming_delay_ms must be between 80 and 1200, or 2400", 422
        language = update.get("language")
        if language is not None and not re.fullmatch(r"[a-z]{2}", language):
            return f"language must be an ISO-639-1 code, got {language!r}", 422
        bias = update.get("context_bias")
        if bias is not None and not all(isinstance(term, str) and term.strip() for term in bias):
            return "context_bias terms must be non-empty strings", 422
        turn_detection = update.get("turn_detection")
        if turn_detection is not None:
            if not self.voxtral_3:
                return f"turn_detection is not supported by model {self.session['model']}", 400
            diarize = update.get("diarize", self.session.get("diarize"))
            if diarize:
                return "Diarization is not compatible with turn detection.", 400
            problem = validate_turn_detection(turn_detection)
            if problem is not None:
                return problem, 422
        elif update.get("diarize") and self.session.get("turn_detection") is not None:
            return "Diarization is not compatible with turn detection.", 400
        return None

    # -- audio -----------------------------------------------------------------------------------

    async def _append(self, audio_b64: str, arrived: float) -> None:
        try:
            chunk = decode_base64(audio_b64, "audio")
        except RequestRejected:
            await self.error("audio is not valid base64", 422)
            return
        if not self.record.audio and self.session.get("turn_detection") is not None:
            self.tracker = TurnTracker(TurnSettings.from_session(self.session["turn_detection"], self.turns),
                                       self.turns)
        self.record.record_append(chunk)
        self._analyse(arrived)
        fault = self.fault
        if fault is not None and self.record.appends >= fault.after:
            self.fault = None
            if fault.kind == "ws_close":
                await self.ws.close(code=fault.code, message=b"injected close")
                raise _Closed
            await self.error(fault.message, fault.code)

    def _analyse(self, arrived: float) -> None:
        """Walk the newly complete frames: speech or silence, turn events, text hypotheses."""
        audio_format = self.session["audio_format"]
        frame_bytes = bytes_per_second(audio_format) * self.turns.frame_ms // 1000
        audio = self.record.audio
        while len(audio) - self.analysed >= frame_bytes:
            frame = bytes(audio[self.analysed:self.analysed + frame_bytes])
            self.analysed += frame_bytes
            self.frames += 1
            speech = is_speech(frame, audio_format["encoding"], self.turns.speech_dbfs)
            if speech:
                self.speech_frames += 1
                self.hypothesis = None
            # A hypothesis every 6 frames (480 ms) of speech, and as soon as a pause starts.
            if (speech and self.speech_frames % 6 == 0) or (self.was_speech and not speech):
                self._schedule("text", arrived, self._text_so_far())
            self.was_speech = speech
            if self.tracker is not None:
                for event in self.tracker.feed(self.frames * self.turns.frame_ms, speech, self._text_so_far):
                    self._schedule("turn", arrived, event)

    def _text_so_far(self) -> str:
        if self.hypothesis is None:
            self.hypothesis = self.fake.transcribe(bytes(self.record.audio[:self.analysed]))
        return self.hypothesis

    def _schedule(self, lane: str, arrived: float, item: Any) -> None:
        if lane == "turn":
            delay = self.turns.event_delay
        else:
            delay = self.session.get("target_streaming_delay_ms", self.turns.default_streaming_delay_ms) / 1000
        due = max(arrived + delay + self.rng.uniform(0, self.turns.jitter), self.last_due[lane])
        self.last_due[lane] = due
        (self.turn_lane if lane == "turn" else self.text_lane).put_nowait((due, item))

    async def run_lanes(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._run_lane(self.turn_lane, self.send))
            group.create_task(self._run_lane(self.text_lane, self._stream_text))

    async def _run_lane(self, lane: asyncio.Queue[tuple[float, Any]],
                        deliver: Callable[[Any], Awaitable[None]]) -> None:
        while True:
            due, item = await lane.get()
            try:
                await self._wait_until(due)
                await deliver(item)
            finally:
                lane.task_done()

    async def _wait_until(self, due: float) -> None:
        if self.hurry.is_set():
            return
        sleeper = asyncio.ensure_future(self.fake.delay(due - time.monotonic(), until=due))
        hurry = asyncio.ensure_future(self.hurry.wait())
        try:
            await asyncio.wait({sleeper, hurry}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            hurry.cancel()

    # -- text ------------------------------------------------------------------------------------

    @property
    def language(self) -> str:
        return str(self.session.get("language") or self.fake.language)

    async def _stream_text(self, text: str) -> None:
        if not self.ended:
            await self._emit_text(text, interval=0.0)

    async def _emit_text(self, text: str, *, interval: float) -> None:
        if text and not self.language_sent:
            self.language_sent = True
            await self.send({"type": "transcription.language", "audio_language": self.language})
        # Only text that extends what was already said can be streamed; a revised hypothesis
        # shows up in transcription.done alone, as with a real streaming recogniser.
        if text.startswith(self.emitted):
            for index, token in enumerate(tokens_of(text[len(self.emitted):])):
                if index or self.emitted:
                    await self.fake.delay(interval)
                self.emitted += token
                await self.send({"type": "transcription.text.delta", "text": token})

    async def _emit_deltas(self, *, final: bool) -> None:
        text = self.fake.transcribe(bytes(self.record.audio))
        await self._emit_text(text, interval=self.fake.latency.realtime_delta_interval)
        if final:
            seconds = self._audio_seconds()
            await self.send({
                "type": "transcription.done", "model": self.session["model"], "text": text,
                "language": self.language if text else None, "segments": [],
                "usage": {"prompt_audio_seconds": round(seconds), "prompt_tokens": 0,
                          "completion_tokens": len(text.split()), "total_tokens": len(text.split())},
            })

    def _audio_seconds(self) -> float:
        return len(self.record.audio) / bytes_per_second(self.session["audio_format"])


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
        session = RealtimeSession(record, compressed=bool(ws.compress))
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
        lanes = asyncio.create_task(stream.run_lanes())
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
        finally:
            lanes.cancel()
            await asyncio.gather(lanes, return_exceptions=True)

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
