"""Streaming speech synthesis: Voxtral TTS audio chunk by chunk, as Ogg Opus pages (``OpusPages``,
``response_format="opus"``, the default) or float32 24 kHz mono ``PcmFrame``s (``"pcm"``: float32
as the API sends it and FFmpeg reads it; the player clips it, off the event loop).

Opus is ~10x fewer bytes to receive, base64-decode and parse than float32 PCM, and the player's
FFmpeg copies its 20 ms packets instead of encoding (docs/decisions.md, Playback). A server that
refuses ``opus`` (HTTP 400/422 before any audio: a self-hosted or older one) is asked again for
``pcm``, and this synthesizer asks for ``pcm`` from then on.

Each PCM chunk carries its own rate and channel count, so a consumer can refuse audio in a format
it does not play instead of playing it at the wrong pitch."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Mapping
from typing import TYPE_CHECKING, Literal

from mistralai.client.models import SpeechStreamAudioDelta
from mistralai.client.types import UNSET

from bot.audio.frames import F32LE, TTS_CHANNELS, TTS_SAMPLE_RATE, PcmFrame
from bot.audio.ogg_opus import OggOpusReader, OpusPages

from .errors import MistralError
from .pcm import Float32Chunks
from .retry import NO_SDK_RETRIES, RetryPolicy
from .streams import stream_items

if TYPE_CHECKING:
    from mistralai.client import Mistral
    from mistralai.client.models import SpeechStreamEvents
    from mistralai.client.utils.eventstreaming import EventStreamAsync

log = logging.getLogger(__name__)

_OPERATION = "speech"
# The API's ``pcm`` response format is float32 little-endian, 24 kHz, mono.
SAMPLE_RATE = TTS_SAMPLE_RATE
SpeechFormat = Literal["opus", "pcm"]
SpeechChunk = PcmFrame | OpusPages
# How a server that does not do a response format refuses it (a validation error).
_REFUSED = (400, 422)


class SpeechSynthesizer:
    """Voxtral TTS over one injected SDK client; yields ``OpusPages`` (Ogg Opus) or ``PcmFrame``s of
    float32 mono PCM at 24 kHz, as ``response_format`` says."""

    channels = TTS_CHANNELS

    def __init__(
        self,
        client: Mistral,
        *,
        model: str,
        retry: RetryPolicy,
        first_audio_timeout: float = 10.0,
        idle_timeout: float = 10.0,
        default_voice: str | None = None,
        voices_by_language: Mapping[str, str] | None = None,
        response_format: SpeechFormat = "pcm",
    ) -> None:
        self._client = client
        self._format: SpeechFormat = response_format
        self._model = model
        self._retry = retry
        self._first_audio_timeout = first_audio_timeout
        self._idle_timeout = idle_timeout
        self._default_voice = default_voice
        self._voices_by_language = {code.lower(): voice for code, voice in (voices_by_language or {}).items()}

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def response_format(self) -> SpeechFormat:
        """What the next request asks for: ``pcm`` once the server refused ``opus``."""
        return self._format

    def preset_voice(self, language: str | None) -> str | None:
        """The preset voice for ``language`` (``fr``, ``fr-FR``...), else the default voice, else
        ``None`` (the API's own default)."""
        if language:
            base = language.lower().replace("_", "-").split("-")[0]
            voice = self._voices_by_language.get(language.lower()) or self._voices_by_language.get(base)
            if voice:
                return voice
        return self._default_voice

    def synthesize(
        self, text: str, *, ref_audio: bytes | None, voice_id: str | None, language: str | None = None
    ) -> AsyncIterator[SpeechChunk]:
        """Speak ``text`` in the cloned voice of ``ref_audio`` (an MP3 or WAV clip), in ``voice_id``
        (a registered or preset voice), or, with neither, in the preset voice for ``language``.

        Voxtral's speech request has no language field: a cloned or registered voice speaks the
        language of the text, so ``language`` only chooses among presets. Failures before the
        first audio are retried; after it they raise ``MistralError``.
        """
        if ref_audio is not None and voice_id is not None:
            raise ValueError("ref_audio and voice_id are mutually exclusive")
        if not text.strip():
            raise ValueError("text must not be empty")
        if ref_audio is None and voice_id is None:
            voice_id = self.preset_voice(language)
        encoded = base64.b64encode(ref_audio).decode("ascii") if ref_audio is not None else None
        return self._speak(text, encoded, voice_id)

    async def _speak(self, text: str, ref_audio: str | None, voice_id: str | None) -> AsyncGenerator[SpeechChunk, None]:
        if self._format == "opus":
            spoke = False
            try:
                async for pages in self._opus(text, ref_audio, voice_id):
                    spoke = True
                    yield pages
                return
            except MistralError as error:
                # A refusal comes before any audio; after audio, a failure is the caller's.
                if spoke or error.status not in _REFUSED:
                    raise
                if self._format == "opus":  # once, though prefetched sentences are refused too
                    self._format = "pcm"
                    log.warning("The speech service refused response_format=opus (HTTP %s); using pcm from now on",
                                error.status)
        async for frame in self._pcm(text, ref_audio, voice_id):
            yield frame

    def _request(self, text: str, ref_audio: str | None, voice_id: str | None,
                 response_format: SpeechFormat) -> Awaitable[EventStreamAsync[SpeechStreamEvents]]:
        return self._client.audio.speech.complete_async(
            input=text,
            model=self._model,
            stream=True,
            response_format=response_format,
            ref_audio=UNSET if ref_audio is None else ref_audio,
            voice_id=UNSET if voice_id is None else voice_id,
            retries=NO_SDK_RETRIES,
            timeout_ms=round(self._idle_timeout * 1000),
        )

    async def _opus(self, text: str, ref_audio: str | None, voice_id: str | None) -> AsyncGenerator[OpusPages, None]:
        reader = OggOpusReader()
        held: list[bytes] = []  # header pages, sent on with the first audio
        audio_seen = False

        async def open_stream() -> EventStreamAsync[SpeechStreamEvents]:
            nonlocal reader, audio_seen
            reader, audio_seen = OggOpusReader(), False  # a retried request starts a new Ogg stream
            held.clear()
            return await self._request(text, ref_audio, voice_id, "opus")

        def pages_of(event: SpeechStreamEvents) -> OpusPages | None:
            nonlocal audio_seen
            data = event.data
            if not isinstance(data, SpeechStreamAudioDelta):
                return None
            pages = reader.feed(base64.b64decode(data.audio_data))
            # Header pages alone are not the first audio: they wait for it (the first-audio
            # timeout and the retry before audio cover the whole wait for speech).
            if pages.first_packet is None and not audio_seen:
                held.append(pages.data)
                return None
            audio_seen = True
            if held:
                pages = OpusPages(b"".join(held) + pages.data, pages.seconds, pages.first_packet)
                held.clear()
            return pages if pages.data else None

        chunks = stream_items(_OPERATION, self._retry, open_stream, pages_of,
                              first_item_timeout=self._first_audio_timeout, idle_timeout=self._idle_timeout)
        try:
            async for pages in chunks:
                yield pages
        finally:
            await chunks.aclose()
        if reader.pending:
            log.warning("speech stream ended mid-page; dropped %d trailing bytes", reader.pending)

    async def _pcm(self, text: str, ref_audio: str | None, voice_id: str | None) -> AsyncGenerator[PcmFrame, None]:
        converter = Float32Chunks()

        async def open_stream() -> EventStreamAsync[SpeechStreamEvents]:
            nonlocal converter
            converter = Float32Chunks()  # a retried request starts on a sample boundary again
            return await self._request(text, ref_audio, voice_id, "pcm")

        chunks = stream_items(_OPERATION, self._retry, open_stream, lambda event: _audio_of(event, converter),
                              first_item_timeout=self._first_audio_timeout, idle_timeout=self._idle_timeout)
        try:
            async for pcm in chunks:
                yield PcmFrame(pcm, SAMPLE_RATE, TTS_CHANNELS, F32LE)
        finally:
            await chunks.aclose()
        if converter.pending:
            log.warning("speech stream ended mid-sample; dropped %d trailing bytes", converter.pending)


def _audio_of(event: SpeechStreamEvents, converter: Float32Chunks) -> bytes:
    data = event.data
    if isinstance(data, SpeechStreamAudioDelta):
        return converter.whole_samples(base64.b64decode(data.audio_data))
    return b""
