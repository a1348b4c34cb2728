"""Custom voices (``/v1/audio/voices``): create, get, list, delete, as the SDK's models describe.

A free plan may not create voices: set ``FakeMistral.voice_creation_refused`` to the status the
API answers there (402 or 403) and ``create`` refuses like it. Answers are built as the SDK's
``VoiceResponse`` / ``VoiceListResponse`` and validated against them before they are sent.
"""

from __future__ import annotations

import io
import math
import uuid
import wave
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import av
import pydantic
from aiohttp import web
from mistralai.client import models

from .common import RequestRejected, decode_base64, validation_failure

if TYPE_CHECKING:
    from .server import FakeMistral
    from .state import RecordedRequest

# The API's preset voices (Voxtral 3 and two Voxtral 2 ones), all a speech request may name
# besides the custom voices created here.
PRESET_VOICES = (
    "voice_478", "voice_447", "voice_485", "voice_484", "voice_483", "voice_482", "voice_481", "voice_480",
    "voice_479", "voice_592", "en_paul_neutral", "gb_jane_neutral",
)
MIN_SAMPLE_SECONDS = 2.0
MAX_SAMPLE_SECONDS = 30.0


@dataclass(slots=True)
class CustomVoice:
    id: str
    name: str
    languages: list[str]
    sample: bytes
    sample_seconds: float
    created_at: datetime
    retention_notice: int

    def response(self) -> dict[str, Any]:
        body = {
            "id": self.id, "name": self.name, "created_at": self.created_at.isoformat(), "user_id": "user-fake",
            "type": "custom", "languages": self.languages, "retention_notice": self.retention_notice,
            "kind": "ivc",
        }
        models.VoiceResponse.model_validate(body)  # the fake never answers what the SDK cannot parse
        return body


def audio_seconds(data: bytes) -> float | None:
    """Seconds of audio in a WAV or MP3 sample, or ``None`` if it is neither."""
    if data[:4] == b"RIFF":
        try:
            with wave.open(io.BytesIO(data)) as reader:
                return reader.getnframes() / reader.getframerate()
        except (wave.Error, EOFError):
            return None
    try:
        with av.open(io.BytesIO(data)) as container:
            if container.format.name != "mp3" or not container.streams.audio:
                return None
            samples = sum(frame.samples for frame in container.decode(audio=0))
            return samples / container.streams.audio[0].rate
    except (av.FFmpegError, ValueError):
        return None


class VoicesHandler:
    def __init__(self, fake: FakeMistral) -> None:
        self._fake = fake
        self.voices: dict[str, CustomVoice] = {}

    def is_known(self, voice_id: str) -> bool:
        return voice_id in self.voices or voice_id in PRESET_VOICES

    async def create(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        fake = self._fake
        body = await fake.read_json(request, record)
        try:
            parsed = models.VoiceCreateRequest.model_validate(body)
        except pydantic.ValidationError as error:
            raise validation_failure(error) from None
        if fake.voice_creation_refused is not None:
            status = fake.voice_creation_refused
            raise RequestRejected(status, {"object": "error", "type": "forbidden", "code": str(status),
                                           "message": "Custom voices are not available on your plan."})
        await fake.delay(record.upload_seconds, until=record.received_at + record.upload_seconds)
        if not parsed.sample_audio:
            raise validation_failure("sample_audio is required")
        sample = decode_base64(parsed.sample_audio, "sample_audio")
        seconds = audio_seconds(sample)
        if seconds is None:
            raise validation_failure("sample_audio must be WAV or MP3 audio")
        if not MIN_SAMPLE_SECONDS <= seconds <= MAX_SAMPLE_SECONDS:
            raise validation_failure(f"sample_audio must hold {MIN_SAMPLE_SECONDS:g}-{MAX_SAMPLE_SECONDS:g} s")
        voice = CustomVoice(
            id=str(uuid.uuid4()), name=parsed.name, languages=list(parsed.languages or []), sample=sample,
            sample_seconds=seconds, created_at=datetime.now(UTC), retention_notice=parsed.retention_notice or 30,
        )
        self.voices[voice.id] = voice
        return web.json_response(voice.response())

    async def list(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        try:
            limit = int(request.query.get("limit", "10"))
            offset = int(request.query.get("offset", "0"))
        except ValueError:
            raise validation_failure("limit and offset must be integers") from None
        kind = request.query.get("type", "all")
        voices = list(self.voices.values()) if kind in ("all", "custom") else []
        page = voices[offset:offset + limit]
        body = {"items": [voice.response() for voice in page], "total": len(voices),
                "page": offset // max(1, limit) + 1, "page_size": limit,
                "total_pages": max(1, math.ceil(len(voices) / max(1, limit)))}
        models.VoiceListResponse.model_validate(body)
        return web.json_response(body)

    async def get(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        return web.json_response(self._voice(request).response())

    async def delete(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        voice = self._voice(request)
        del self.voices[voice.id]
        return web.json_response(voice.response())

    def _voice(self, request: web.Request) -> CustomVoice:
        voice = self.voices.get(request.match_info["voice_id"])
        if voice is None:
            raise RequestRejected(404, {"object": "error", "message": "Voice not found", "code": "404"})
        return voice
