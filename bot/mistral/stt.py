"""Speech-to-text while the user is still talking, with a batch fallback per utterance.

Audio goes to the realtime transcription WebSocket as it arrives, so by the time the user stops
only the tail is left to recognise. Every byte is also kept: if the realtime session fails in
any way (connect error, error event, socket closed, no ``transcription.done`` in time), the same
utterance is sent once more, as WAV, to the batch endpoint under the retry policy.

Session options (``SessionOptions``: context bias, language, turn detection, streaming delay) go
in the session's ``session.update`` before the first audio chunk: a Voxtral 3 session locks its
settings when the first chunk arrives. Options the model lacks are left out.

Server turn detection (Voxtral 3 realtime, ``turn_detection_available``): the server reports
``turn.start``, ``turn.eager_end`` (the user may be done), ``turn.resume`` (they were not) and
``turn.end`` (``threshold`` after ``min_silence_ms`` of silence, or ``timeout``) to ``on_turn``.
On ``turn.end`` the transcriber stops pulling from the audio iterator (a pending ``__anext__`` is
cancelled), finishes the session and returns. If the server refuses turn detection for the model,
the utterance is sent again on a new session without it (no audio is lost), the refusal is
remembered for that model, and ``turn_detection_available`` becomes False: callers that rely on
server turn events must keep a local end-of-turn as a safety net.

IMPORTANT for callers using server turn detection: the server measures silence in the AUDIO it
receives, not in wall time. Discord sends no packets while someone is silent, so the caller must
keep streaming audio in real time through pauses (zeros, 20 ms per 20 ms), or no ``turn.end``
(nor ``eager_end``) will ever come. ``Transcript.audio_seconds`` counts those zeros: it is what
was sent, and what Mistral bills.

Callbacks (``on_partial``, ``on_turn``, ``on_language``; plain or async) run inline on the event
loop's receive path: keep them quick and hand long work to a task.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mistralai.client.models import (
    AudioFormat,
    File,
    RealtimeTranscriptionError,
    TranscriptionStreamDone,
    TranscriptionStreamLanguage,
    TranscriptionStreamTextDelta,
    TurnDetectionEagerEndEvent,
    TurnDetectionEndEvent,
    TurnDetectionResumeEvent,
    TurnDetectionStartEvent,
)

from bot.audio.frames import STT_SAMPLE_RATE
from bot.audio.wav import pcm16_to_wav

from .redaction import install_log_redaction
from .retry import NO_SDK_RETRIES, RetryPolicy
from .stt_audio import Utterance
from .stt_types import (
    LanguageCallback,
    PartialCallback,
    SessionOptions,
    Transcript,
    TurnCallback,
    TurnDetectionMode,
    TurnDetectionSettings,
    TurnEvent,
    TurnKind,
    is_voxtral_3_realtime,
)

if TYPE_CHECKING:
    from mistralai.client import Mistral
    from mistralai.extra.realtime import RealtimeConnection

log = logging.getLogger(__name__)

SAMPLE_RATE = STT_SAMPLE_RATE
_BYTES_PER_SECOND = SAMPLE_RATE * 2

_TURN_KINDS: dict[type[Any], TurnKind] = {
    TurnDetectionStartEvent: "start",
    TurnDetectionEagerEndEvent: "eager_end",
    TurnDetectionResumeEvent: "resume",
    TurnDetectionEndEvent: "end",
}


class _RealtimeFailed(Exception):
    """The realtime session ended without a transcript."""


class _TurnDetectionRefused(Exception):
    """The server answered our settings with an error about turn detection."""


@dataclass(slots=True)
class _Callbacks:
    partial: PartialCallback | None
    turn: TurnCallback | None
    language: LanguageCallback | None


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
        turn_detection: TurnDetectionMode = "auto",
    ) -> None:
        """``turn_detection``: ``auto`` uses it on Voxtral 3 realtime ids, ``on`` assumes any model
        has the Voxtral 3 session options (a self-hosted server), ``off`` never asks for it."""
        self._client = client
        self._realtime_model = realtime_model
        self._batch_model = batch_model
        self._retry = retry
        self._connect_timeout = connect_timeout
        self._final_timeout = final_timeout
        self._batch_timeout = batch_timeout
        self._on_partial = on_partial
        self._turn_detection_mode = turn_detection
        self._voxtral_3 = turn_detection == "on" or is_voxtral_3_realtime(realtime_model)
        self._refused_turn_detection: set[str] = set()
        # The realtime socket's handshake headers would otherwise reach DEBUG logs with the key.
        install_log_redaction()

    @property
    def model(self) -> str:
        return self._realtime_model

    @property
    def turn_detection_available(self) -> bool:
        """Whether ``SessionOptions.turn_detection`` will be sent (and turn events may come)."""
        return (self._voxtral_3 and self._turn_detection_mode != "off"
                and self._realtime_model not in self._refused_turn_detection)

    async def transcribe(
        self,
        audio: AsyncIterator[bytes],
        *,
        on_partial: PartialCallback | None = None,
        on_turn: TurnCallback | None = None,
        on_language: LanguageCallback | None = None,
        options: SessionOptions | None = None,
    ) -> Transcript:
        """Transcribe one utterance. It ends when ``audio`` ends or on the server's ``turn.end``.

        ``on_partial`` (or the constructor's) receives the text so far after each realtime delta;
        ``on_turn`` each server turn event until the utterance ends; ``on_language`` the detected
        language. Raises ``MistralError`` only when the batch fallback fails too.
        """
        callbacks = _Callbacks(on_partial or self._on_partial, on_turn, on_language)
        state = Utterance()
        async with asyncio.TaskGroup() as group:
            state.pump = group.create_task(self._pump(audio, state))
            transcript = await self._realtime(state, callbacks, options or SessionOptions())
            if transcript is None:
                await state.pump
        if state.source_error is not None:
            raise state.source_error
        if transcript is not None:
            return transcript
        return await self._batch(state)

    async def _pump(self, audio: AsyncIterator[bytes], state: Utterance) -> None:
        try:
            async for chunk in audio:
                if state.stop_requested:
                    # Python 3.11's wait_for (in the caller's iterator) may swallow our cancel
                    # when its own wait completed at the same moment: stop pulling anyway.
                    break
                await state.pulled(chunk)
        except asyncio.CancelledError:
            if not state.stop_requested:
                raise
        except Exception as exc:
            state.source_error = exc
        finally:
            state.finish(self._final_timeout)

    # -- realtime ------------------------------------------------------------------------------

    async def _realtime(
        self, state: Utterance, callbacks: _Callbacks, options: SessionOptions
    ) -> Transcript | None:
        turn_detection = options.turn_detection if self.turn_detection_available else None
        try:
            return await self._session(state, callbacks, options, turn_detection)
        except _TurnDetectionRefused:
            self._refused_turn_detection.add(self._realtime_model)
            log.warning("model %s refused turn detection; continuing without it", self._realtime_model)
        return await self._session(state, callbacks, options, None)

    def _session_fields(self, options: SessionOptions, turn_detection: TurnDetectionSettings | None) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "audio_format": AudioFormat(encoding="pcm_s16le", sample_rate=SAMPLE_RATE),
            "target_streaming_delay_ms": options.streaming_delay_ms,
        }
        if self._voxtral_3:
            fields["context_bias"] = list(options.context_bias) or None
            fields["language"] = options.language
            fields["turn_detection"] = turn_detection.to_sdk() if turn_detection is not None else None
        return fields

    async def _session(
        self, state: Utterance, callbacks: _Callbacks, options: SessionOptions,
        turn_detection: TurnDetectionSettings | None,
    ) -> Transcript | None:
        try:
            async with asyncio.timeout(self._connect_timeout):
                connection = await self._client.audio.realtime.connect(
                    self._realtime_model, timeout_ms=round(self._connect_timeout * 1000),
                    **self._session_fields(options, turn_detection),
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
                        sender = group.create_task(state.send_all(connection))
                        # The SDK's event iterator swallows CancelledError, so it runs in its own
                        # task: cancelling transcribe() must cancel us, not end the stream quietly.
                        receiver = group.create_task(
                            self._receive(connection, state, callbacks, turn_detection is not None)
                        )
                        transcript = await receiver
                        sender.cancel()
                finally:
                    state.deadlines.remove(deadline)
                return transcript
        except Exception as exc:
            if _contains(exc, _TurnDetectionRefused):
                raise _TurnDetectionRefused from None
            # A TaskGroup reports child errors instead of our own cancellation: honour the cancel.
            _reraise_if_cancelling()
            log.warning("realtime transcription failed (%s); using batch", _describe(exc))
            return None

    async def _receive(
        self, connection: RealtimeConnection, state: Utterance, callbacks: _Callbacks, turn_detection: bool
    ) -> Transcript:
        parts: list[str] = []
        language: str | None = None
        async for event in connection:
            if isinstance(event, TranscriptionStreamTextDelta):
                parts.append(event.text)
                await _notify(callbacks.partial, "".join(parts))
            elif isinstance(event, TranscriptionStreamLanguage):
                language = event.audio_language
                await _notify(callbacks.language, language)
            elif (kind := _TURN_KINDS.get(type(event))) is not None:
                if state.end_reason is not None:
                    continue  # the utterance is over for us: later turns belong to nobody
                reason = event.end_reason if isinstance(event, TurnDetectionEndEvent) else None
                if reason is not None:
                    state.stop(reason)
                time_s = float(getattr(event, "time_s", 0.0))
                await _notify(callbacks.turn, TurnEvent(kind, time_s, reason, "".join(parts)))
            elif isinstance(event, TranscriptionStreamDone):
                return Transcript(
                    text=event.text.strip(),
                    language=event.language or language,
                    audio_seconds=len(state.buffer) / _BYTES_PER_SECOND,
                    partial_updates=len(parts),
                    source="realtime",
                    end_reason=state.end_reason,
                    turn_detection=turn_detection,
                )
            elif isinstance(event, RealtimeTranscriptionError):
                if turn_detection and _about_turn_detection(event):
                    raise _TurnDetectionRefused
                raise _RealtimeFailed(f"error event (code {event.error.code})")
        _reraise_if_cancelling()
        raise _RealtimeFailed("socket closed before transcription.done")

    # -- batch fallback ------------------------------------------------------------------------

    async def _batch(self, state: Utterance) -> Transcript:
        seconds = len(state.buffer) / _BYTES_PER_SECOND
        if not state.buffer:
            return Transcript("", None, 0.0, 0, source="empty", end_reason=state.end_reason)
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
            return Transcript(response.text.strip(), language, seconds, 0, source="batch",
                              end_reason=state.end_reason)

        return await self._retry.run("transcription", attempt)


def _about_turn_detection(event: RealtimeTranscriptionError) -> bool:
    """Whether an error event is the server refusing ``turn_detection`` (the model lacks it)."""
    message = str(event.error.message).lower()
    return "turn_detection" in message or "turn detection" in message


def _contains(exc: BaseException, kind: type[BaseException]) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return any(_contains(inner, kind) for inner in exc.exceptions)
    return isinstance(exc, kind)


def _reraise_if_cancelling() -> None:
    """The SDK's event iterator swallows CancelledError; restore it when our task is being cancelled."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def _notify(callback: Callable[[Any], Awaitable[None] | None] | None, value: object) -> None:
    if callback is None:
        return
    try:
        result = callback(value)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("transcription callback failed")


def _describe(exc: BaseException) -> str:
    """Class names only: SDK and websockets messages can quote handshake responses."""
    if isinstance(exc, BaseExceptionGroup):
        return ", ".join(_describe(inner) for inner in exc.exceptions)
    if isinstance(exc, _RealtimeFailed):
        return str(exc)
    cause = exc.__cause__
    return type(exc).__name__ + (f" <- {type(cause).__name__}" if cause is not None else "")
