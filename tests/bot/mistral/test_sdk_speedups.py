"""The SDK speed-ups: wrapper models built once per type, and SSE parsed by a regex, each giving
exactly the SDK's own results."""

from __future__ import annotations

import base64
import json
import random
import threading
import typing
from collections.abc import AsyncIterator

import httpx2
import pydantic
import pytest
from mistralai.client import Mistral, basesdk, models, utils
from mistralai.client import errors as sdk_errors
from mistralai.client._hooks.custom_user_agent import CustomUserAgentHook
from mistralai.client.types import UNSET, OptionalNullable
from mistralai.client.utils import eventstreaming, forms, queryparams, serializers, url
from mistralai.client.utils.unmarshal_json_response import unmarshal_json_response

from bot.mistral import sdk_speedups
from bot.mistral.sdk_speedups import (
    _SDK_RUN_IN_THREAD as SDK_RUN_IN_THREAD,
)
from bot.mistral.sdk_speedups import (
    _SDK_STREAM_EVENTS as SDK_STREAM_EVENTS,
)
from bot.mistral.sdk_speedups import (
    _cached_create_model,
    _stream_events_async,
    cached_model_count,
    install_fast_event_streams,
    install_inline_hooks,
    install_model_cache,
    install_type_hint_cache,
)
from tests.fakes.mistral import FakeMistral
from tests.fakes.tls import TestCertificates


@pytest.fixture
def original_serializers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start from the SDK as shipped; monkeypatch puts back whatever was installed."""
    monkeypatch.setattr(serializers, "create_model", pydantic.create_model)


MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
MESSAGE_LIST = list[models.ChatCompletionStreamRequestMessage]


@pytest.mark.usefixtures("original_serializers")
def test_installed_results_equal_the_sdks_own() -> None:
    before = utils.get_pydantic_model(MESSAGES, MESSAGE_LIST)
    stop_before = utils.unmarshal(UNSET, OptionalNullable[models.ChatCompletionStreamRequestStop])
    assert install_model_cache()
    after = utils.get_pydantic_model(MESSAGES, MESSAGE_LIST)
    assert after == before and [type(m) for m in after] == [models.SystemMessage, models.UserMessage]
    assert utils.unmarshal(UNSET, OptionalNullable[models.ChatCompletionStreamRequestStop]) == stop_before
    request = models.SpeechRequest(input="Hello", model="voxtral-mini-tts-2603")
    assert utils.marshal_json(request, models.SpeechRequest) == request.model_dump_json(by_alias=True,
                                                                                        exclude_none=True)


@pytest.mark.usefixtures("original_serializers")
def test_each_wrapper_class_is_built_once() -> None:
    install_model_cache()
    utils.get_pydantic_model(MESSAGES, MESSAGE_LIST)
    count = cached_model_count()
    for _ in range(5):
        utils.get_pydantic_model(MESSAGES, MESSAGE_LIST)
        utils.unmarshal(None, OptionalNullable[models.ChatCompletionStreamRequestStop])
    assert cached_model_count() <= count + 1  # the second type, once


@pytest.mark.usefixtures("original_serializers")
def test_install_is_idempotent_and_leaves_a_changed_sdk_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    assert install_model_cache() and install_model_cache()
    assert serializers.create_model is _cached_create_model
    replaced = object()
    monkeypatch.setattr(serializers, "create_model", replaced)
    assert install_model_cache() is False
    assert serializers.create_model is replaced


def test_unhashable_or_unusual_calls_fall_through_to_pydantic() -> None:
    first = _cached_create_model("Other", x=(int, ...))
    second = _cached_create_model("Other", x=(int, ...))
    assert first is not second  # not the SDK's shape: never cached
    assert first(x=1).x == 1


# -- server-sent events ---------------------------------------------------------------------------


class ChunkedResponse:
    """What stream_events_async reads: an httpx response's aiter_bytes() and aclose()."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks
        self.closed = False

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk

    async def aclose(self) -> None:
        self.closed = True


def sse_stream(rng: random.Random) -> bytes:
    boundaries = [b"\n\n", b"\r\n\r\n", b"\r\r", b"\n\r\n", b"\n\n\n"]
    parts = [b"\xef\xbb\xbf"] if rng.random() < 0.3 else []
    for index in range(rng.randint(1, 12)):
        # Raw U+2028 / U+0085 / form feed in the JSON: line breaks to str.splitlines, not to SSE.
        text = "A" * rng.randint(0, 9000) + rng.choice(["", "\u2028x", "\x85", "\x0c"])
        payload = json.dumps({"type": "speech.audio.delta", "n": index, "audio_data": text}, ensure_ascii=False)
        lines = [b": keep-alive"] if rng.random() < 0.2 else []
        if rng.random() < 0.5:
            lines.append(b"event: speech.audio.delta")
        if rng.random() < 0.2:
            lines.append(f"id: {index}".encode())
        if rng.random() < 0.1:
            lines.append(b"retry: 3000")
        if rng.random() < 0.1:
            lines.append(b"data: not json")  # two data lines: joined, and not JSON any more
        lines.append(b"data: " + (b"null" if rng.random() < 0.05 else payload.encode()))  # null data is kept
        # Lines end in LF, CRLF or a lone CR (all three are SSE line ends).
        parts.append(rng.choice([b"\n", b"\r\n", b"\r"]).join(lines) + rng.choice(boundaries))
    if rng.random() < 0.5:
        parts.append(b"data: [DONE]\n\n")
    if rng.random() < 0.3:
        parts.append(b'data: {"tail": true}')  # no final boundary: parsed at the end
    return b"".join(parts)


def chunked(data: bytes, rng: random.Random) -> list[bytes]:
    chunks, at = [], 0
    while at < len(data):
        size = rng.choice([1, 2, 3, 7, 100, 4096, 65536])
        chunks.append(data[at : at + size])
        at += size
    return chunks


async def parse(function: object, chunks: list[bytes]) -> tuple[list[object], bool]:
    response = ChunkedResponse(chunks)
    # Decoded as the SDK's decoders do (they parse the JSON text): the fast parser hands them valid
    # JSON data as it came rather than serialised again, so the text differs, never the values.
    events = [event async for event in function(response, json.loads, "[DONE]")]  # type: ignore[operator]
    return events, response.closed


async def test_the_fast_event_parser_yields_exactly_what_the_sdks_yields() -> None:
    rng = random.Random(7)
    seen = 0
    for _ in range(300):
        chunks = chunked(sse_stream(rng), rng)
        expected = await parse(SDK_STREAM_EVENTS, chunks)
        assert await parse(_stream_events_async, chunks) == expected
        seen += len(expected[0])
    assert seen > 1000  # the streams held events, and both parsers found them


def test_events_decode_to_the_same_sdk_models_as_the_sdks_parser() -> None:
    # Through the SDK's own decoders (the lambdas speech.py and chat.py pass): TTS audio, chat
    # chunks, and data that is not JSON or not one JSON value (the SDK keeps it as a string).
    response = httpx2.Response(200)
    def speech(raw: str) -> object:
        return unmarshal_json_response(models.SpeechStreamEvents, response, raw)

    def chat(raw: str) -> object:
        return unmarshal_json_response(models.CompletionEvent, response, raw)

    delta = {"type": "speech.audio.delta", "audio_data": base64.b64encode(bytes(range(256)) * 24).decode()}
    chunk = {"id": "c1", "model": "m", "object": "chat.completion.chunk", "created": 1,
             "choices": [{"index": 0, "delta": {"content": " wörd\u2028"}, "finish_reason": None}]}
    cases = [
        (speech, f"event: speech.audio.delta\ndata: {json.dumps(delta)}"),
        (speech, f"event: speech.audio.delta\r\ndata:{json.dumps(delta, indent=1)}\r\nid: 7"),
        (chat, f"data: {json.dumps(chunk, ensure_ascii=False)}"),
        (chat, f"data: {json.dumps(chunk)}\ndata: {json.dumps(chunk)}"),  # two values: not one JSON value
        (chat, f'data: {json.dumps(chunk)}, "x": 1'),  # not JSON; would be, pasted into the object as it is
        (chat, "data: not json"),
    ]
    for decoder, block in cases:
        results: list[object] = []
        for parse_event in (eventstreaming._parse_event, sdk_speedups._parse_event):
            try:
                results.append(parse_event(raw=bytearray(block.encode()), decoder=decoder, sentinel="[DONE]"))
            except Exception as error:  # the SDK's validation error, from both or neither
                results.append(type(error))
        assert results[0] == results[1], block[:60]
    assert results[0] is sdk_errors.ResponseValidationError  # the last case fails in both


def test_install_fast_event_streams_replaces_only_the_sdks_own_function(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eventstreaming, "stream_events_async", SDK_STREAM_EVENTS)
    assert install_fast_event_streams() and install_fast_event_streams()
    assert eventstreaming.stream_events_async is _stream_events_async
    monkeypatch.setattr(eventstreaming, "stream_events_async", lambda *args, **kwargs: None)
    assert install_fast_event_streams() is False


async def test_speech_streams_through_the_sdk_with_the_fast_parser(monkeypatch: pytest.MonkeyPatch,
                                                                   trusted_certificates: TestCertificates) -> None:
    monkeypatch.setattr(eventstreaming, "stream_events_async", SDK_STREAM_EVENTS)
    async with FakeMistral(trusted_certificates) as fake:
        client = Mistral(api_key=fake.api_key, server_url=fake.url)
        text = "Hello there, general Kenobi."

        async def audio() -> bytes:
            stream = await client.audio.speech.complete_async(input=text, model="voxtral-mini-tts-2603",
                                                              response_format="pcm", stream=True)
            return b"".join([base64.b64decode(e.data.audio_data) async for e in stream
                             if e.event == "speech.audio.delta"])

        slow = await audio()
        assert install_fast_event_streams()
        assert await audio() == slow and len(slow) > 10_000


# -- type hints -------------------------------------------------------------------------------------


@pytest.fixture
def original_type_hints(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (queryparams, url, forms):
        monkeypatch.setattr(module, "get_type_hints", typing.get_type_hints)
    monkeypatch.setattr(sdk_speedups, "_type_hints", {})


@pytest.mark.usefixtures("original_type_hints")
def test_type_hints_are_resolved_once_per_class_with_the_sdks_results(monkeypatch: pytest.MonkeyPatch) -> None:
    request = models.SpeechRequest(input="Hello", model="voxtral-mini-tts-2603", voice_id="v")
    expected = queryparams.get_query_params(request)
    resolved: list[object] = []
    real = typing.get_type_hints

    def counting(obj: object, *args: object, **kwargs: object) -> dict[str, object]:
        resolved.append(obj)
        return real(obj, *args, **kwargs)  # type: ignore[arg-type]

    assert install_type_hint_cache() and install_type_hint_cache()
    monkeypatch.setattr(typing, "get_type_hints", counting)  # what the cache calls on a miss
    assert [queryparams.get_query_params(request) for _ in range(3)] == [expected] * 3
    assert resolved == [models.SpeechRequest]  # once, then from the cache
    hints = url.get_type_hints(models.SpeechRequest)
    hints.clear()  # a caller's copy: the cache keeps its own
    assert forms.get_type_hints(models.SpeechRequest) == real(models.SpeechRequest)


@pytest.mark.usefixtures("original_type_hints")
def test_install_type_hint_cache_leaves_a_changed_sdk_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    def other(obj: object) -> dict[str, object]:
        return {}

    monkeypatch.setattr(url, "get_type_hints", other)
    assert install_type_hint_cache() is False
    assert url.get_type_hints is other and queryparams.get_type_hints is sdk_speedups._cached_type_hints


# -- request hooks ----------------------------------------------------------------------------------


@pytest.fixture
def hook_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The SDK as shipped; the thread each request's user-agent hook (one of the SDK's own) ran in."""
    monkeypatch.setattr(basesdk, "run_sync_in_thread", SDK_RUN_IN_THREAD)
    threads: list[int] = []
    real = CustomUserAgentHook.before_request

    def spying(self: CustomUserAgentHook, *args: typing.Any) -> typing.Any:
        threads.append(threading.get_ident())
        return real(self, *args)

    monkeypatch.setattr(CustomUserAgentHook, "before_request", spying)
    return threads


async def _chat(client: Mistral) -> str:
    stream = await client.chat.stream_async(model="mistral-small-latest", messages=MESSAGES)
    return "".join([event.data.choices[0].delta.content or "" async for event in stream])  # type: ignore[operator]


async def test_the_sdks_own_request_hooks_run_on_the_loop(hook_threads: list[int],
                                                          trusted_certificates: TestCertificates) -> None:
    async with FakeMistral(trusted_certificates) as fake:
        fake.latency.chat_first_token = 0.0
        client = Mistral(api_key=fake.api_key, server_url=fake.url)
        answer = await _chat(client)  # the SDK as shipped: a worker thread
        assert hook_threads[0] != threading.get_ident()
        assert install_inline_hooks() and install_inline_hooks()
        assert await _chat(client) == answer
        assert hook_threads[1] == threading.get_ident()
    assert len(hook_threads) == 2


async def test_unknown_hooks_and_a_client_without_key_keep_the_thread(hook_threads: list[int],
                                                                      trusted_certificates: TestCertificates,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert install_inline_hooks()
    async with FakeMistral(trusted_certificates) as fake:
        fake.latency.chat_first_token = 0.0
        monkeypatch.setenv("MISTRAL_API_KEY", fake.api_key)  # no api_key: the SDK reads the environment
        await _chat(Mistral(server_url=fake.url))  # may read a service-account token file: off the loop
        keyed = Mistral(api_key=fake.api_key, server_url=fake.url)

        class Other(CustomUserAgentHook):  # a hook we have not read may block
            pass

        keyed.sdk_configuration.__dict__["_hooks"].register_before_request_hook(Other())
        await _chat(keyed)
    loop_thread = threading.get_ident()
    assert len(hook_threads) == 3  # Other runs the spy too
    assert all(thread != loop_thread for thread in hook_threads)


def test_install_inline_hooks_leaves_a_changed_sdk_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    async def other(func: typing.Any, *args: typing.Any) -> typing.Any:
        return func(*args)

    monkeypatch.setattr(basesdk, "run_sync_in_thread", other)
    assert install_inline_hooks() is False
    assert basesdk.run_sync_in_thread is other
