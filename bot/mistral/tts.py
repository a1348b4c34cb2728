"""Streaming speech synthesis: Voxtral TTS audio as float32 24 kHz mono ``PcmFrame``s, chunk by chunk
(float32 as the API sends it and FFmpeg reads it; the player clips it, off the event loop).

Each chunk carries its own rate and channel count, so a consumer can refuse audio in a format it
does not play instead of playing it at the wrong pitch."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import TYPE_CHECKING

from mistralai.client.models import SpeechStreamAudioDelta
from mistralai.client.types import UNSET

from bot.audio.frames import F32LE, TTS_CHANNELS, TTS_SAMPLE_RATE, PcmFrame

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


class SpeechSynthesizer:
    """Voxtral TTS over one injected SDK client; yields ``PcmFrame``s of float32 mono PCM at 24 kHz."""

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
    ) -> None:
        self._client = client
        self._model = model
        self._retry = retry
        self._first_audio_timeout = first_audio_timeout
        self._idle_timeout = idle_timeout
        self._default_voice = default_voice
        self._voices_by_language = {code.lower(): voice for code, voice in (voices_by_language or {}).items()}

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

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
    ) -> AsyncIterator[PcmFrame]:
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
        return self._stream(text, encoded, voice_id)

    async def _stream(
        self, text: str, ref_audio: str | None, voice_id: str | None
    ) -> AsyncGenerator[PcmFrame, None]:
        converter = Float32Chunks()

        async def open_stream() -> EventStreamAsync[SpeechStreamEvents]:
            nonlocal converter
            converter = Float32Chunks()  # a retried request starts on a sample boundary again
            return await self._client.audio.speech.complete_async(
                input=text,
                model=self._model,
                stream=True,
                response_format="pcm",
                ref_audio=UNSET if ref_audio is None else ref_audio,
                voice_id=UNSET if voice_id is None else voice_id,
                retries=NO_SDK_RETRIES,
                timeout_ms=round(self._idle_timeout * 1000),
            )

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
