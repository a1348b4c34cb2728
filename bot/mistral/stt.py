"""Speech-to-text while the user is still talking, with a batch fallback per utterance.

Audio goes to the realtime transcription WebSocket as it arrives, so by the time the user stops
only the tail is left to recognise. Every byte is also kept: if the realtime session fails in
any way (connect error, error event, socket closed, no ``transcription.done`` in time), the same
utterance is sent once more, as WAV, to the batch endpoint under the retry policy.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from mistralai.client.models import (
    AudioFormat,
    File,
    RealtimeTranscriptionError,
    TranscriptionStreamDone,
    TranscriptionStreamLanguage,
    TranscriptionStreamTextDelta,
)

from bot.audio.frames import STT_SAMPLE_RATE
from bot.audio.wav import pcm16_to_wav

from .redaction import install_log_redaction
from .retry import NO_SDK_RETRIES, RetryPolicy

if TYPE_CHECKING:
    from mistralai.client import Mistral
    from mistralai.extra.realtime import RealtimeConnection

log = logging.getLogger(__name__)

SAMPLE_RATE = STT_SAMPLE_RATE
_BYTES_PER_SECOND = SAMPLE_RATE * 2
# Keeps each append well under WebSocket message limits even after a slow connect let audio pile up.
_MAX_APPEND_BYTES = 64 * 1024

PartialCallback = Callable[[str], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    language: str | None
    audio_seconds: float
    partial_updates: int
    source: Literal["realtime", "batch", "empty"] = "realtime"


class _RealtimeFailed(Exception):
    """The realtime session ended without a transcript."""


@dataclass(slots=True)
class _Utterance:
    """Audio received so far, shared by the pump (writer) and the realtime sender (reader)."""

    buffer: bytearray = field(default_factory=bytearray)
    ended: bool = False
    source_error: BaseException | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    deadlines: list[asyncio.Timeout] = field(default_factory=list)


class StreamingTranscriber:
    """Voxtral realtime STT over one injected SDK client. Input: 16 kHz mono s16le PCM chunks."""

    def __init__(
        self,
        client: Mistral,
        *,
        realtime_model: str,
        batch_model: str,
        retry: RetryPolicy,
        connect_timeout: float = 5.0,
        final_timeout: float = 5.0,
        batch_timeout: float = 30.0,
        on_partial: PartialCallback | None = None,
    ) -> None:
        self._client = client
        self._realtime_model = realtime_model
        self._batch_model = batch_model
        self._retry = retry
        self._connect_timeout = connect_timeout
        self._final_timeout = final_timeout
        self._batch_timeout = batch_timeout
        self._on_partial = on_partial
        # The realtime socket's handshake headers would otherwise reach DEBUG logs with the key.
        install_log_redaction()

    async def transcribe(
        self, audio: AsyncIterator[bytes], *, on_partial: PartialCallback | None = None
    ) -> Transcript:
        """Transcribe one utterance; ``audio`` ends when the user stops talking.

        ``on_partial`` (or the constructor's) receives the text so far after each realtime delta.
        Raises ``MistralError`` only when the batch fallback fails too.
        """
        callback = on_partial or self._on_partial
        state = _Utterance()
        async with asyncio.TaskGroup() as group:
            pump = group.create_task(self._pump(audio, state))
            transcript = await self._realtime(state, callback)
            if transcript is None:
                await pump
        if state.source_error is not None:
            raise state.source_error
        if transcript is not None:
            return transcript
        return await self._batch(state)

    async def _pump(self, audio: AsyncIterator[bytes], state: _Utterance) -> None:
        try:
            async for chunk in audio:
                state.buffer.extend(chunk)
                state.changed.set()
        except Exception as exc:
            state.source_error = exc
        finally:
            state.ended = True
            state.changed.set()
        # From here the realtime session has ``final_timeout`` to deliver transcription.done.
        loop = asyncio.get_running_loop()
        for deadline in state.deadlines:
            deadline.reschedule(loop.time() + self._final_timeout)

    # -- realtime ------------------------------------------------------------------------------

    async def _realtime(self, state: _Utterance, callback: PartialCallback | None) -> Transcript | None:
        try:
            async with asyncio.timeout(self._connect_timeout):
                connection = await self._client.audio.realtime.connect(
                    self._realtime_model,
                    audio_format=AudioFormat(encoding="pcm_s16le", sample_rate=SAMPLE_RATE),
                    timeout_ms=round(self._connect_timeout * 1000),
                )
        except Exception as exc:
            log.warning("realtime transcription unavailable (%s); using batch", _describe(exc))
            return None
        try:
            async with connection, asyncio.timeout(None) as deadline:
                state.deadlines.append(deadline)
                if state.ended:
                    deadline.reschedule(asyncio.get_running_loop().time() + self._final_timeout)
                try:
                    async with asyncio.TaskGroup() as group:
                        sender = group.create_task(self._send(connection, state))
                        # The SDK's event iterator swallows CancelledError, so it runs in its own
                        # task: cancelling transcribe() must cancel us, not end the stream quietly.
                        receiver = group.create_task(self._receive(connection, state, callback))
                        transcript = await receiver
                        sender.cancel()
                finally:
                    state.deadlines.remove(deadline)
                return transcript
        except Exception as exc:
            # A TaskGroup reports child errors instead of our own cancellation: honour the cancel.
            _reraise_if_cancelling()
            log.warning("realtime transcription failed (%s); using batch", _describe(exc))
            return None

    async def _send(self, connection: RealtimeConnection, state: _Utterance) -> None:
        sent = 0
        while True:
            await state.changed.wait()
            state.changed.clear()
            while sent < len(state.buffer):
                chunk = bytes(state.buffer[sent:sent + _MAX_APPEND_BYTES])
                await connection.send_audio(chunk)
                sent += len(chunk)
            if state.ended and sent == len(state.buffer):
                break
        await connection.flush_audio()
        await connection.end_audio()

    async def _receive(
        self, connection: RealtimeConnection, state: _Utterance, callback: PartialCallback | None
    ) -> Transcript:
        parts: list[str] = []
        language: str | None = None
        async for event in connection:
            if isinstance(event, TranscriptionStreamTextDelta):
                parts.append(event.text)
                await _notify(callback, "".join(parts))
            elif isinstance(event, TranscriptionStreamLanguage):
                language = event.audio_language
            elif isinstance(event, TranscriptionStreamDone):
                return Transcript(
                    text=event.text.strip(),
                    language=event.language or language,
                    audio_seconds=len(state.buffer) / _BYTES_PER_SECOND,
                    partial_updates=len(parts),
                    source="realtime",
                )
            elif isinstance(event, RealtimeTranscriptionError):
                raise _RealtimeFailed(f"error event (code {event.error.code})")
        _reraise_if_cancelling()
        raise _RealtimeFailed("socket closed before transcription.done")

    # -- batch fallback ------------------------------------------------------------------------

    async def _batch(self, state: _Utterance) -> Transcript:
        seconds = len(state.buffer) / _BYTES_PER_SECOND
        if not state.buffer:
            return Transcript("", None, 0.0, 0, source="empty")
        wav = pcm16_to_wav(bytes(state.buffer), sample_rate=SAMPLE_RATE)

        async def attempt() -> Transcript:
            async with asyncio.timeout(self._batch_timeout):
                response = await self._client.audio.transcriptions.complete_async(
                    model=self._batch_model,
                    file=File(file_name="utterance.wav", content=wav, content_type="audio/wav"),
                    retries=NO_SDK_RETRIES,
                    timeout_ms=round(self._batch_timeout * 1000),
                )
            language = response.language if isinstance(response.language, str) else None
            return Transcript(response.text.strip(), language, seconds, 0, source="batch")

        return await self._retry.run("transcription", attempt)


def _reraise_if_cancelling() -> None:
    """The SDK's event iterator swallows CancelledError; restore it when our task is being cancelled."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def _notify(callback: PartialCallback | None, text: str) -> None:
    if callback is None:
        return
    try:
        result = callback(text)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("partial transcript callback failed")


def _describe(exc: BaseException) -> str:
    """Class names only: SDK and websockets messages can quote handshake responses."""
    if isinstance(exc, BaseExceptionGroup):
        return ", ".join(_describe(inner) for inner in exc.exceptions)
    if isinstance(exc, _RealtimeFailed):
        return str(exc)
    cause = exc.__cause__
    return type(exc).__name__ + (f" <- {type(cause).__name__}" if cause is not None else "")
