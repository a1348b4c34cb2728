"""The SDK's first-use work, done at start instead of during the first turn after it.

**Lazy imports** (``preload_sdk``): the SDK loads its sub-clients, request and event models, and
httpx's connection backend on first use: ~120 modules and ~400 ms of the first turn after every
restart (its realtime STT took 287 ms instead of 6, its chat request 92 instead of 7, against the
fake Mistral), during which every guild's audio waits too.

**First calls** (``warm_sdk``): the first chat and speech request of a process also build what
later ones find ready: the serializers' wrapper models and the request models' type hints (both
cached by ``sdk_speedups``), pydantic's first validation and serialisation of each request and
event model. The room benchmark's first speech request spent 4.2 ms of the loop's CPU between
``complete_async`` and the request leaving, against 0.9 ms for later ones (thread CPU time,
bench.room traces); that was the first reply's first sentence waiting. ``warm_sdk`` sends one
chat stream and one speech stream through our own ``ChatModel`` and ``SpeechSynthesizer`` (so the
same calls and types as a reply) to an in-process transport that answers like Mistral: nothing
leaves the process and nothing is billed.
"""

from __future__ import annotations

import base64
import importlib
import json
import logging

import httpx2
from mistralai.client import Mistral, models

from .chat import ChatMessage, ChatModel
from .retry import RetryPolicy
from .tts import SpeechSynthesizer

log = logging.getLogger(__name__)

# What the chat stream, the TTS stream and a realtime transcription build or parse.
_PRELOADED_MODELS = (
    "ChatCompletionStreamRequest", "CompletionEvent", "SpeechRequest", "SpeechStreamEvents",
    "TranscriptionStreamEvents", "TranscriptionResponse", "AudioFormat", "Security",
)
_PRELOADED_MODULES = (
    "anyio._backends._asyncio",  # httpcore opens its first connection through anyio
    "mistralai.client.utils.headers",
    "mistralai.client.utils.queryparams",
    "mistralai.client.utils.unmarshal_json_response",
)
_WARM_UP_URL = "http://sdk-warm-up.invalid"


def preload_sdk(client: Mistral) -> None:
    """Import now what the SDK would import on the event loop during the first turn after start.
    Touching them makes no request; a name a future SDK no longer has is skipped."""
    audio = client.audio
    for sub_client in (client.chat, audio.speech, audio.transcriptions, audio.realtime):
        log.debug("preloaded %s", type(sub_client).__name__)
    for name in _PRELOADED_MODELS:
        getattr(models, name, None)
    for module in _PRELOADED_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:
            log.debug("not preloaded: %s", module)


def _sse(*events: tuple[str | None, object]) -> bytes:
    return b"".join(
        (f"event: {name}\n" if name else "").encode() + b"data: "
        + (value.encode() if isinstance(value, str) else json.dumps(value).encode()) + b"\n\n"
        for name, value in events
    )


def _answer(request: httpx2.Request) -> httpx2.Response:
    """A short streamed answer in Mistral's shapes (chat chunks then ``[DONE]``; speech deltas)."""
    headers = {"content-type": "text/event-stream"}
    if request.url.path.endswith("/chat/completions"):
        chunk = {"id": "warm-up", "object": "chat.completion.chunk", "created": 0, "model": "warm-up",
                 "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Warm."}, "finish_reason": "stop"}],
                 "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
        return httpx2.Response(200, headers=headers, content=_sse((None, chunk), (None, "[DONE]")))
    if request.url.path.endswith("/audio/speech"):
        pcm = base64.b64encode(bytes(960)).decode("ascii")  # 10 ms of float32 silence at 24 kHz
        return httpx2.Response(200, headers=headers, content=_sse(
            ("speech.audio.delta", {"type": "speech.audio.delta", "audio_data": pcm}),
            ("speech.audio.done", {"type": "speech.audio.done",
                                   "usage": {"prompt_tokens": 1, "completion_tokens": 0, "total_tokens": 1}}),
        ))
    return httpx2.Response(404)


async def warm_sdk(*, chat_model: str, tts_model: str) -> bool:
    """One chat stream and one speech stream answered in-process, as a reply makes them; call
    after ``install_sdk_speedups``. False (logged) if the SDK no longer accepts the answers."""
    retry = RetryPolicy(max_attempts=1, max_total_seconds=5.0)
    # Both clients in-process, so neither builds a TLS context (the SDK makes a sync client of its
    # own when given none, and that parses the whole trust store: ~55 ms and ~0.7 MB); no proxy
    # from the environment either, which would be given a context of its own.
    mock = httpx2.MockTransport(_answer)
    with httpx2.Client(transport=mock, trust_env=False) as sync_http:
        async with httpx2.AsyncClient(transport=mock, trust_env=False) as http:
            client = Mistral(api_key="sdk-warm-up", server_url=_WARM_UP_URL, client=sync_http,
                             async_client=http)
            try:
                chat = ChatModel(client, model=chat_model, retry=retry).stream(
                    [ChatMessage(role="system", content="Warm up."), ChatMessage(role="user", content="Hi")],
                    max_tokens=8)
                text = "".join([delta async for delta in chat])
                # The canned answer is PCM: the SDK's request and event models are what is warmed.
                speech = SpeechSynthesizer(client, model=tts_model, retry=retry, response_format="pcm").synthesize(
                    text or "Warm.", ref_audio=None, voice_id="warm-up")
                frames = [frame async for frame in speech]
            except Exception as error:  # MistralError, or a validation error of a changed SDK
                log.warning("Mistral SDK warm-up failed (%s); the first reply builds its requests cold",
                            type(error).__name__)
                return False
    return bool(text) and bool(frames)
