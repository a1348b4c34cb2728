"""Chat completions and speech: JSON answers and their Server-Sent-Event streams."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

import pydantic
from aiohttp import web
from mistralai.client import models

from .audio import SECONDS_PER_CHARACTER, TTS_SAMPLE_RATE, opus_pieces
from .common import FAULT_KEY, RequestRejected, decode_base64, message_text, validation_failure
from .state import Fault, RecordedRequest
from .voices import audio_seconds

if TYPE_CHECKING:
    from .server import FakeMistral

_TOKEN = re.compile(r"\s*\S+")


def tokens_of(text: str) -> list[str]:
    """Word-sized pieces with their leading space, so ``"".join(tokens_of(t)) == t`` for stripped t."""
    pieces = _TOKEN.findall(text)
    tail = text[sum(map(len, pieces)):]
    if tail and pieces:
        pieces[-1] += tail
    elif tail:
        pieces = [tail]
    return pieces


class _EventWriter:
    """Writes SSE events and applies an injected mid-stream cut. Notices a client that hung up."""

    def __init__(self, request: web.Request, response: web.StreamResponse, fault: Fault | None,
                 record: RecordedRequest) -> None:
        self._request = request
        self._response = response
        self._record = record
        self._cut_after = fault.after if fault is not None and fault.kind == "break" else None
        self.sent = 0
        self.cut = False

    @property
    def ended(self) -> bool:
        """Nothing more can reach the client: the fake cut the stream or the client closed it."""
        return self.cut or self._record.abandoned

    async def send(self, data: str, event: str | None = None) -> None:
        if self._cut_after is not None and self.sent >= self._cut_after:
            if not self.cut:
                self.cut = True
                # Dropping the socket mid-body is what a crashed upstream looks like to httpx.
                transport = self._request.transport
                if transport is not None:
                    transport.abort()
            return
        if self._record.abandoned:
            return
        prefix = f"event: {event}\n" if event else ""
        try:
            await self._response.write(f"{prefix}data: {data}\n\n".encode())
        except ConnectionResetError:
            # The client closed the stream (a barge-in abandons chat and speech mid-way).
            self._record.abandoned = True
            return
        self.sent += 1


async def _open_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    return response


class ChatHandler:
    def __init__(self, fake: FakeMistral) -> None:
        self._fake = fake

    async def handle(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        fake = self._fake
        body = await fake.read_json(request, record)
        stream = body.get("stream") is True
        model_cls = models.ChatCompletionStreamRequest if stream else models.ChatCompletionRequest
        try:
            parsed = model_cls.model_validate(body)
        except pydantic.ValidationError as error:
            raise validation_failure(error) from None
        if not parsed.messages:
            raise validation_failure("messages must not be empty")
        max_tokens = body.get("max_tokens")
        if max_tokens is not None and max_tokens < 1:
            raise validation_failure("max_tokens must be at least 1")

        tokens = tokens_of(fake.reply(body["messages"]))
        finish_reason = "stop"
        if max_tokens is not None and len(tokens) > max_tokens:
            tokens, finish_reason = tokens[:max_tokens], "length"
        usage = {
            "prompt_tokens": _prompt_tokens(body["messages"]),
            "completion_tokens": len(tokens),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        completion_id = uuid.uuid4().hex
        created = int(time.time())
        model = str(body["model"])

        if not stream:
            await fake.delay(fake.latency.chat_first_token)
            return web.json_response({
                "id": completion_id, "object": "chat.completion", "model": model, "created": created,
                "usage": usage,
                "choices": [{"index": 0, "finish_reason": finish_reason,
                             "message": {"role": "assistant", "content": "".join(tokens)}}],
            })

        response = await _open_stream(request)
        writer = _EventWriter(request, response, request.get(FAULT_KEY), record)

        def chunk(delta: dict[str, Any], finish: str | None, with_usage: bool) -> str:
            data: dict[str, Any] = {
                "id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if with_usage:
                data["usage"] = usage
            return json.dumps(data)

        await writer.send(chunk({"role": "assistant", "content": ""}, None, False))
        # Token i is due at arrival + first_token + i / rate: the fake's own time never adds up.
        first_due = record.received_at + fake.latency.chat_first_token
        await fake.delay(fake.latency.chat_first_token, until=first_due)
        interval = 1.0 / fake.latency.chat_tokens_per_s if fake.latency.chat_tokens_per_s else 0.0
        if not tokens:
            await writer.send(chunk({"content": ""}, finish_reason, True))
        for index, token in enumerate(tokens):
            if writer.ended:
                break
            if index:
                await fake.delay(interval, until=first_due + index * interval)
            last = index == len(tokens) - 1
            await writer.send(chunk({"content": token}, finish_reason if last else None, last))
        if writer.ended:
            return response
        await writer.send("[DONE]")
        await response.write_eof()
        record.status = 200
        return response


def _prompt_tokens(messages: list[dict[str, Any]]) -> int:
    # A stand-in tokenizer: words plus one per message for the role marker.
    return sum(len(message_text(message).split()) + 1 for message in messages)


class SpeechHandler:
    def __init__(self, fake: FakeMistral) -> None:
        self._fake = fake

    async def handle(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        fake = self._fake
        body = await fake.read_json(request, record)
        try:
            parsed = models.SpeechRequest.model_validate(body)
        except pydantic.ValidationError as error:
            raise validation_failure(error) from None
        if not parsed.input.strip():
            raise validation_failure("input must not be empty")
        ref_audio = body.get("ref_audio")
        voice_id = body.get("voice_id")
        if ref_audio is not None and voice_id is not None:
            raise validation_failure("ref_audio cannot be combined with voice_id")
        if voice_id is not None and not fake.knows_voice(voice_id):
            raise RequestRejected(404, {"object": "error", "message": f"Voice {voice_id} not found", "code": "404"})
        if ref_audio is not None:
            clip = decode_base64(ref_audio, "ref_audio")
            if not clip:
                raise validation_failure("ref_audio is empty")
            if audio_seconds(clip) is None:
                raise validation_failure("ref_audio must be WAV or MP3 audio")
            record.body["ref_audio_bytes"] = clip
        response_format = parsed.response_format or "mp3"
        if response_format in fake.tts_refused_formats:
            raise validation_failure(f"response_format {response_format!r} is not supported")
        audio = fake.speech_cache.get(parsed.input, fake.tts_seconds_per_character or SECONDS_PER_CHARACTER,
                                      response_format, fake.tts_opus_frame_ms)
        characters = len(parsed.input)
        usage = {"prompt_tokens": characters, "completion_tokens": 0, "total_tokens": characters}

        if parsed.stream is not True:
            await fake.delay(record.upload_seconds + fake.latency.tts_first_audio)
            return web.json_response({"audio_data": base64.b64encode(audio).decode("ascii")})

        response = await _open_stream(request)
        writer = _EventWriter(request, response, request.get(FAULT_KEY), record)
        # The first audio comes after the upload (a clip in ref_audio is most of it) and the model.
        first_audio = record.upload_seconds + fake.latency.tts_first_audio
        first_due = record.received_at + first_audio
        jitter = fake.latency.tts_jitter
        size = max(1, fake.tts_chunk_bytes)
        if response_format == "opus":
            # By duration, not bytes: 6 KB of Opus is ~1 s of speech, which would arrive faster
            # than real time. Each event: the pages of a pcm chunk's worth of audio (62.5 ms).
            pieces = opus_pieces(audio, size / 4 / TTS_SAMPLE_RATE)
        else:
            pieces = [audio[offset:offset + size] for offset in range(0, len(audio), size)]
        for index, piece in enumerate(pieces):
            if writer.ended:
                break
            due = first_due + index * fake.latency.tts_chunk_interval
            step = fake.latency.tts_chunk_interval if index else first_audio
            if jitter and index:
                shift = fake.random.uniform(-jitter, jitter)
                due, step = due + shift, max(0.0, step + shift)
            await fake.delay(step, until=due)
            payload = {"type": "speech.audio.delta", "audio_data": base64.b64encode(piece).decode("ascii")}
            await writer.send(json.dumps(payload), event="speech.audio.delta")
        done = {"type": "speech.audio.done", "usage": usage}
        await writer.send(json.dumps(done), event="speech.audio.done")
        if writer.ended:
            return response
        await response.write_eof()
        record.status = 200
        return response
