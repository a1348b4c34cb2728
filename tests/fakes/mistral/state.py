"""What a test scripts on the fake Mistral: latency, faults, and the record of what it received."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

Endpoint = Literal["chat", "transcriptions", "speech", "realtime", "voices"]
ENDPOINTS: tuple[Endpoint, ...] = ("chat", "transcriptions", "speech", "realtime", "voices")


@dataclass(slots=True)
class Latency:
    """Seconds the fake waits, on its own (real) clock, before the named moment."""

    stt_final: float = 0.0
    """Realtime ``transcription.done`` after ``input_audio.end`` (and batch, unless ``stt_batch``)."""
    stt_batch: float | None = None
    """Batch transcription answer when it should differ from ``stt_final``."""
    realtime_delta_interval: float = 0.0
    """Between consecutive realtime ``transcription.text.delta`` events."""
    chat_first_token: float = 0.0
    chat_tokens_per_s: float | None = None
    """``None`` streams every token at once."""
    tts_first_audio: float = 0.0
    tts_chunk_interval: float = 0.0
    uplink_bits_per_s: float | None = 20e6
    """A JSON request body reaches the API at this rate (a 20 Mbit/s uplink by default): its
    first answer byte waits ``bytes * 8 / rate`` more (speech and voices: the requests that carry
    audio). ``None``: instant."""
    tts_jitter: float = 0.0
    """Each speech chunk after the first is due up to this many seconds early or late, uniformly,
    around its ``tts_first_audio + index * tts_chunk_interval`` schedule: network jitter, which
    never accumulates (a chunk due before the one ahead of it waits for it, as TCP would). The
    first chunk's own delay is ``tts_first_audio``, so turn-latency figures stay comparable."""


@dataclass(slots=True)
class Fault:
    kind: Literal["status", "stall", "break", "ws_close", "ws_error"]
    status: int = 503
    retry_after: float | None = None
    after: int = 0
    """``break``: events sent before the cut; ``ws_close``/``ws_error``: appends received first."""
    code: int = 1011
    message: str = "internal error"


class Faults:
    """Queues of faults per endpoint; each queued fault answers exactly one request, in order."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[Fault]] = {name: deque() for name in ENDPOINTS}

    def fail_next(
        self, endpoint: Endpoint, times: int = 1, *, status: int = 503, retry_after: float | None = None
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (and ``Retry-After`` seconds if given).

        For ``realtime`` the WebSocket upgrade is refused with that status.
        """
        self._push(endpoint, times, Fault("status", status=status, retry_after=retry_after))

    def stall_next(self, endpoint: Endpoint, times: int = 1) -> None:
        """Accept the next requests and never answer (realtime: never sends ``session.created``)."""
        self._push(endpoint, times, Fault("stall"))

    def break_stream_next(
        self, endpoint: Literal["chat", "speech"], *, after_events: int, times: int = 1
    ) -> None:
        """Send ``after_events`` SSE events, then cut the connection without a terminator."""
        self._push(endpoint, times, Fault("break", after=after_events))

    def close_realtime_next(self, *, after_appends: int = 1, code: int = 1011, times: int = 1) -> None:
        """Close the realtime WebSocket (with ``code``) once ``after_appends`` audio chunks arrived."""
        self._push("realtime", times, Fault("ws_close", after=after_appends, code=code))

    def error_realtime_next(
        self, *, after_appends: int = 1, code: int = 500, message: str = "internal error", times: int = 1
    ) -> None:
        """Send a realtime ``error`` event once ``after_appends`` audio chunks arrived."""
        self._push("realtime", times, Fault("ws_error", after=after_appends, code=code, message=message))

    def clear(self) -> None:
        for queue in self._queues.values():
            queue.clear()

    def pending(self, endpoint: Endpoint) -> int:
        return len(self._queues[endpoint])

    def take(self, endpoint: Endpoint) -> Fault | None:
        queue = self._queues[endpoint]
        return queue.popleft() if queue else None

    def _push(self, endpoint: Endpoint, times: int, fault: Fault) -> None:
        if endpoint not in self._queues:
            raise ValueError(f"unknown endpoint {endpoint!r}")
        self._queues[endpoint].extend(fault for _ in range(times))


@dataclass(slots=True)
class RecordedRequest:
    """One request as the fake understood it. ``body`` is the JSON (or form fields, file as bytes)."""

    endpoint: Endpoint
    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any]
    status: int | None = None
    """The status answered; ``None`` while streaming or when it stalled."""
    authorized: bool = False
    received_at: float = field(default_factory=time.monotonic)
    body_bytes: int = 0
    """Size of the request body as sent (a speech request with ``ref_audio`` carries the clip)."""
    upload_seconds: float = 0.0
    """How long the body takes over ``Latency.uplink_bits_per_s``: added before the first answer
    byte of a speech request and before a voice is created."""
    """``time.monotonic()`` when the request arrived (retry spacing, ``Retry-After``)."""
    abandoned: bool = False
    """The client closed a streamed response before it ended (chat and speech)."""
    peer: tuple[str, int] | None = None
    """The client's address and port: one per TCP connection, so tests can count connections."""


@dataclass(slots=True)
class RealtimeSession:
    """One realtime transcription WebSocket: everything the client sent, in order, and derived facts."""

    request: RecordedRequest
    messages: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)
    """``time.monotonic()`` each event of ``sent`` went out (benchmarks time the turn events)."""
    audio: bytearray = field(default_factory=bytearray)
    settings: dict[str, Any] = field(default_factory=dict)
    """The session as last accepted (``session.updated``): audio_format, turn_detection, ..."""
    compressed: bool = False
    """Whether the client offered permessage-deflate (the fake, like aiohttp's default, accepts it)."""
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    _appends: int = 0
    _append_waiters: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)

    @property
    def message_types(self) -> list[str]:
        return [str(message.get("type")) for message in self.messages]

    @property
    def appends(self) -> int:
        return self._appends

    async def wait_for_appends(self, count: int) -> None:
        """Return once ``count`` ``input_audio.append`` messages have arrived."""
        if self._appends >= count:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._append_waiters.append((count, future))
        await future

    def record_append(self, chunk: bytes) -> None:
        self.audio.extend(chunk)
        self._appends += 1
        still_waiting = []
        for count, future in self._append_waiters:
            if self._appends >= count and not future.done():
                future.set_result(None)
            elif not future.done():
                still_waiting.append((count, future))
        self._append_waiters = still_waiting
