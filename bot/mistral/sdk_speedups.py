"""Fixes for the ``mistralai`` SDK's hot paths and its HTTP client, installed once by the entry point.

**Wrapper models.** The SDK stops building a pydantic model class on every call.

The SDK's (Speakeasy-generated) ``utils.serializers.unmarshal`` and ``marshal_json`` wrap the
value in a model made with ``pydantic.create_model("Unmarshaller", body=(typ, ...))`` on every
call. Building a model class costs ~1 ms, and a chat request makes about eight such calls (one
per optional argument, even when it is unset) before a byte leaves, a TTS request several: all
on the event loop, between the transcript and the request going out (measured with cProfile
against the fake Mistral; see docs/benchmarks.md). The class depends only on its name and
``typ``, so this caches it; the values still go through exactly the SDK's own code.

**Server-sent events.** ``utils.eventstreaming.stream_events_async`` finds event boundaries by
looping over every byte of the stream in Python. A TTS stream is ~130 KB/s of base64 audio per
talking guild, so that loop cost ~0.8 ms per 62 ms chunk and was the largest item on the event
loop at 50 talking guilds (bench/scaling.py profile). The replacement is the same function with
the byte loop replaced by one compiled regex over the same boundary list, searched from the same
positions (alternation order = the SDK's boundary order). Each event is then parsed by
``_parse_event``, the SDK's function line for line except how it splits the block into lines: the
SDK's ``re.split(r"\r?\n|\r", block)`` cost ~110 µs per 8 KB TTS event (the regex cannot skip
ahead through the long base64 line), 85 % of the per-event cost; a ``split`` (after two
``str.replace`` if the block has a CR) gives the same lines in a few µs. And the data, once parsed
as the SDK does, reaches the decoder as it came instead of serialised again: 34 -> 18 µs per TTS event.

**Type hints once per class** and **request hooks on the loop**: ``install_type_hint_cache``, ``install_inline_hooks``.

**In modules of their own:** idle connections probed at once (``pool_probe.py``), ``UNSET`` shared (``sdk_unset.py``),
the realtime socket uncompressed and with one TLS context (``realtime_socket.py``).

Imports and first-call work done at start instead of in the first turn: ``sdk_preload.py``.

Each of the other fixes replaces module-level names that the SDK looks up at call time,
and nothing else; if a future SDK changes that shape, it is left alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
import logging
import re
import ssl
import threading
import typing
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import httpx2
import pydantic
from mistralai.client import basesdk
from mistralai.client._hooks import registration as hook_registration
from mistralai.client._hooks.sdkhooks import SDKHooks
from mistralai.client.utils import eventstreaming, serializers

from bot.mistral.pool_probe import install_cheap_idle_probe
from bot.mistral.realtime_socket import install_realtime_socket_options
from bot.mistral.sdk_unset import install_shared_unset

log = logging.getLogger(__name__)

_lock = threading.Lock()
_cache: dict[tuple[str, Any, tuple[tuple[str, Any], ...]], type[pydantic.BaseModel]] = {}


def _cached_create_model(model_name: str, /, **kwargs: Any) -> type[pydantic.BaseModel]:
    body = kwargs.get("body")
    config = kwargs.get("__config__")
    if set(kwargs) - {"body", "__config__"} or not isinstance(body, tuple) or len(body) != 2:
        return pydantic.create_model(model_name, **kwargs)
    try:
        key = (model_name, body[0], tuple(sorted((config or {}).items())))
        hash(key)
    except TypeError:  # an unhashable annotation: build it the SDK's way
        return pydantic.create_model(model_name, **kwargs)
    model = _cache.get(key)
    if model is None:
        with _lock:  # the SDK also runs in worker threads (sync calls); build each class once
            model = _cache.get(key)
            if model is None:
                model = _cache[key] = pydantic.create_model(model_name, **kwargs)
    return model


def install_model_cache() -> bool:
    """Cache the SDK's per-call wrapper models. Idempotent; False if the SDK's shape changed."""
    current = getattr(serializers, "create_model", None)
    if current is _cached_create_model:
        return True
    if current is not pydantic.create_model:
        log.debug("mistralai serializers changed shape; not caching their wrapper models")
        return False
    serializers.create_model = _cached_create_model  # type: ignore[attr-defined,assignment]  # patching the SDK module
    return True


_SDK_STREAM_EVENTS: Any = getattr(eventstreaming, "stream_events_async", None)
_BOUNDARIES: list[bytes] = list(getattr(eventstreaming, "MESSAGE_BOUNDARIES", []))
_BOUNDARY = re.compile(b"|".join(re.escape(boundary) for boundary in _BOUNDARIES)) if _BOUNDARIES else None
# Every SSE boundary begins with CR or LF, so only those bytes can start one.
_CR_LF_FIRST = bool(_BOUNDARIES) and all(boundary[:1] in (b"\r", b"\n") for boundary in _BOUNDARIES)
# The end of the body follows the sentinel at once from Mistral (and the fake); this only bounds a
# server that leaves it open.
_DRAIN_SECONDS = 0.05
_EVENT_FIELDS = tuple(field.name for field in dataclasses.fields(eventstreaming.ServerEvent))


def _next_boundary(buffer: bytearray, start: int) -> re.Match[bytes] | None:
    """``_BOUNDARY.search(buffer, start)``: the regex tries the alternation at every byte (~15 µs
    through an 8 KB TTS event); here ``find`` (memchr) jumps to the next CR or LF and the regex
    is only matched there. Same match: no boundary can start at any other byte."""
    if not _CR_LF_FIRST:
        return _BOUNDARY.search(buffer, start) if _BOUNDARY is not None else None
    while True:
        lf, cr = buffer.find(b"\n", start), buffer.find(b"\r", start)
        if lf < 0 and cr < 0:
            return None
        at = lf if cr < 0 else cr if lf < 0 else min(lf, cr)
        match = _BOUNDARY.match(buffer, at) if _BOUNDARY is not None else None
        if match is not None:
            return match
        start = at + 1


async def _stream_events_async(
    response: Any,
    decoder: Callable[[str], Any],
    sentinel: str | None = None,
    data_required: bool = True,
) -> AsyncGenerator[Any, None]:
    """``eventstreaming.stream_events_async`` with its per-byte boundary scan done by ``find``, and
    the body read to its end after the sentinel (``_drain``)."""
    assert _BOUNDARY is not None
    parse_event = _parse_event
    bom, max_boundary = eventstreaming.UTF8_BOM, eventstreaming.MAX_BOUNDARY_LEN
    try:
        buffer = bytearray()
        position = 0
        event_id: str | None = None
        chunks = response.aiter_bytes()
        async for chunk in chunks:
            data = chunk[len(bom):] if len(buffer) == 0 and chunk.startswith(bom) else chunk
            old_len = len(buffer)
            buffer += data
            # As the SDK's loop: every index from here is a candidate, including the ones just
            # after a boundary (which yields the same empty blocks the SDK yields).
            index = max(position, old_len - max_boundary + 1)
            while (match := _next_boundary(buffer, index)) is not None:
                index = match.start()
                block = buffer[position:index]
                position = index + len(match.group())
                event, discard, event_id = parse_event(
                    raw=block, decoder=decoder, sentinel=sentinel, event_id=event_id, data_required=data_required
                )
                if event is not None:
                    yield event
                if discard:
                    await _drain(chunks)
                    return
                index += 1
            if position > 0:
                buffer = buffer[position:]
                position = 0
        event, discard, _ = parse_event(
            raw=buffer, decoder=decoder, sentinel=sentinel, event_id=event_id, data_required=data_required
        )
        if event is not None:
            yield event
    finally:
        await response.aclose()


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read what follows the sentinel (``[DONE]``) to the end of the body. The SDK closes the
    response there unread, and httpx then closes its connection: every chat stream cost a new
    connection (TCP and TLS) for a later request, and the close itself ran on the loop just as the
    reply's first speech request was sent (~1 ms of its 3 ms connect, bench.room traces); read to
    the end, the connection goes back to the pool, where that speech request finds it. A server
    that keeps the body open after the sentinel is closed on as before after ``_DRAIN_SECONDS``."""
    try:
        async with asyncio.timeout(_DRAIN_SECONDS):
            async for _ in chunks:
                pass
    except (TimeoutError, httpx2.HTTPError):
        pass  # closed unread, as the SDK does


def _parse_event(
    *, raw: bytearray, decoder: Callable[[str], Any], sentinel: str | None = None,
    event_id: str | None = None, data_required: bool = True,
) -> tuple[Any, bool, str | None]:
    """``eventstreaming._parse_event`` (mistralai 3.7.0), with its lines split without a regex."""
    # The SDK: re.split(r"\r?\n|\r", block). CRLF first, then lone CR: the same lines.
    text = raw.decode()
    lines = (text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text).split("\n")
    publish = False
    event = eventstreaming.ServerEvent()
    data_parts: list[str] = []
    for line in lines:
        if not line:
            continue
        delim = line.find(":")
        if delim == 0:
            continue
        field, value = line, ""
        if delim > 0:
            field = line[0:delim]
            value = line[delim + 1:] if delim < len(line) - 1 else ""
            if len(value) and value[0] == " ":
                value = value[1:]
        if field == "event":
            event.event = value
            publish = True
        elif field == "data":
            data_parts.append(value)
            publish = True
        elif field == "id":
            publish = True
            if "\x00" not in value:
                event_id = value
        elif field == "retry":
            if value.isdigit():
                event.retry = int(value)
            publish = True
    event.id = event_id
    has_data = bool(data_parts)
    data = "\n".join(data_parts)
    if sentinel and has_data and data == sentinel:
        return None, True, event_id
    if not has_data and publish and data_required:
        return None, False, event_id
    spliced = False
    if has_data:
        try:
            event.data = json.loads(data)
            spliced = True
        except json.JSONDecodeError:
            event.data = data
    if not publish:
        return None, False, event_id
    # The SDK builds this from dataclasses.asdict(event), a deep copy (~30 µs per TTS event), and
    # serialises the parsed data again (~12 µs): data that parsed as one JSON value goes in as it came.
    values = ((name, getattr(event, name)) for name in _EVENT_FIELDS)
    out_dict = {k: v for k, v in values if v is not None or (k == "data" and has_data)}
    if not spliced:
        return decoder(json.dumps(out_dict)), False, event_id
    del out_dict["data"]
    head = json.dumps(out_dict)
    return decoder(f'{head[:-1]}{", " if out_dict else ""}"data": {data}}}'), False, event_id


def install_fast_event_streams() -> bool:
    """Scan SSE streams with a regex instead of a Python loop per byte. Idempotent; False if the
    SDK's event-stream module no longer has the shape this was written against."""
    current: Any = getattr(eventstreaming, "stream_events_async", None)
    if current is _stream_events_async:
        return True
    expected = ("_parse_event", "ServerEvent", "UTF8_BOM", "MAX_BOUNDARY_LEN", "MESSAGE_BOUNDARIES")
    if (current is None or current is not _SDK_STREAM_EVENTS or _BOUNDARY is None
            or not all(hasattr(eventstreaming, name) for name in expected)
            or "_peek_sequence" not in current.__code__.co_names):
        log.debug("mistralai event streams changed shape; keeping the SDK's parser")
        return False
    eventstreaming.stream_events_async = _stream_events_async
    return True


_TYPE_HINT_MODULES = ("queryparams", "url", "forms")
_type_hints: dict[type, dict[str, Any]] = {}


def _cached_type_hints(obj: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """``typing.get_type_hints(cls)`` once per class (a copy each call, as the SDK may keep it)."""
    if args or kwargs or not isinstance(obj, type):
        return typing.get_type_hints(obj, *args, **kwargs)
    hints = _type_hints.get(obj)
    if hints is None:
        hints = _type_hints[obj] = typing.get_type_hints(obj)
    return dict(hints)


def install_type_hint_cache() -> bool:
    """The SDK resolves a request model's type hints on every request to read its query, path and
    form fields: ~200 µs for a speech request and ~340 µs for a chat request (the string
    annotations are evaluated each time), on the loop before the request leaves. A class's hints
    do not change. Idempotent; False (that module left alone) where the SDK changed shape."""
    installed = True
    for name in _TYPE_HINT_MODULES:
        try:
            module = importlib.import_module(f"mistralai.client.utils.{name}")
        except ImportError:
            installed = False
            continue
        current = getattr(module, "get_type_hints", None)
        if current is _cached_type_hints:
            continue
        if current is not typing.get_type_hints:
            log.debug("mistralai utils.%s changed shape; not caching its type hints", name)
            installed = False
            continue
        module.get_type_hints = _cached_type_hints  # type: ignore[attr-defined]  # patching the SDK module
    return installed


_SDK_RUN_IN_THREAD: Any = getattr(basesdk, "run_sync_in_thread", None)
# The hooks the SDK registers itself (mistralai 3.7.0 ``_hooks/registration.py``), read for what
# they do: header edits, a deprecation log, tracing when OpenTelemetry is configured (its exporter
# has its own thread), workflow payloads (other operations only), and a service-account token read
# from a file, which only happens when the client has no API key. Anything else is left in a thread.
_INLINE_HOOK_CLASSES = frozenset(
    getattr(hook_registration, name) for name in (
        "ServiceAccountAuthHook", "CustomUserAgentHook", "TraceparentInjectionHook", "TracingHook",
        "DeprecationWarningHook", "WorkflowEncodingHook", "WorkflowStreamErrorHook",
    ) if hasattr(hook_registration, name)
)
_HOOK_METHODS = {"before_request": "before_request_hooks", "after_success": "after_success_hooks",
                 "after_error": "after_error_hooks"}


def _inline(func: Any, args: tuple[Any, ...]) -> bool:
    hooks = getattr(func, "__self__", None)
    attribute = _HOOK_METHODS.get(getattr(func, "__name__", ""))
    if type(hooks) is not SDKHooks or attribute is None or not args:
        return False
    config = getattr(args[0], "config", None)
    if config is None or getattr(config, "security", None) is None:
        return False  # no API key: the service-account hook reads its token file
    return all(type(hook) in _INLINE_HOOK_CLASSES for hook in getattr(hooks, attribute))


async def _run_hooks(func: Callable[..., Any], *args: Any) -> Any:
    """``basesdk.run_sync_in_thread`` (``asyncio.to_thread``): the SDK's own hooks run inline."""
    if _inline(func, args):
        return func(*args)
    return await asyncio.to_thread(func, *args)


def install_inline_hooks() -> bool:
    """Run the SDK's request hooks on the loop instead of in a worker thread.

    Every request goes through ``before_request`` before it is sent and ``after_success`` once its
    headers came, each through ``asyncio.to_thread``: a thread hand-over and back, 0.4 ms p50 and
    1.5 ms p90 on an idle 2-core machine and 16 ms p90 beside one busy Python thread (the GIL, with
    the playback threads running), for hooks that take ~11 µs. Idempotent; False (left alone)
    where the SDK changed shape."""
    current: Any = getattr(basesdk, "run_sync_in_thread", None)
    if current is _run_hooks:
        return True
    if current is None or current is not _SDK_RUN_IN_THREAD or not _INLINE_HOOK_CLASSES:
        log.debug("mistralai basesdk changed shape; its hooks stay in threads")
        return False
    if not all(hasattr(SDKHooks, method) for method in _HOOK_METHODS):
        log.debug("mistralai hooks changed shape; they stay in threads")
        return False
    basesdk.run_sync_in_thread = _run_hooks  # type: ignore[attr-defined]  # patching the SDK module
    return True


def install_sdk_speedups(*, tls: ssl.SSLContext) -> None:
    """``tls``: the bot's one TLS context, which the realtime socket shares (``realtime_socket.py``)."""
    install_model_cache()
    install_fast_event_streams()
    install_realtime_socket_options(tls)
    install_type_hint_cache()
    install_inline_hooks()
    install_cheap_idle_probe()
    install_shared_unset()


def cached_model_count() -> int:
    return len(_cache)
