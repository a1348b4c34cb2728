"""Reading on the SDK's HTTP connections without two ``epoll_ctl`` calls per wait.

anyio's asyncio ``SocketStream.receive`` (4.x) resumes the transport's reading before it waits
for data and pauses it again right after, every time its queue is empty: on the selector loop that
is an ``epoll_ctl`` ADD and a DEL for every streamed chat token and TTS chunk the client waits for.
At 50 answering guilds a cProfile of the loop thread counted 1,505 ``register`` and 1,548
``unregister`` calls in one level, ~1 ms each: each syscall lets the GIL go, and the loop then
queues behind the bot's other ~55 threads (voice readers, the packet sender, the FFmpeg pipe
thread) to get it back (docs/benchmarks.md, "anyio read churn").

Here the transport anyio's stream holds is a thin stand-in whose ``pause_reading`` does nothing,
so a connection keeps reading while its response streams in. Flow control stays, at a coarser
grain: once anyio's queue holds more than ``HIGH_WATER`` bytes (the consumer has fallen behind),
reading pauses for real, and anyio's own ``resume_reading`` before its next wait
on an empty queue resumes it, as before. TLS needs nothing more: anyio's ``TLSStream`` reads its
records through the same socket stream.

An idle pooled connection must not be read, or asyncio would take the server's close (or any
bytes it sends) before ``pool_probe``'s poll could see them. ``park`` pauses reading when the pool
first probes the connection after its response (every request's end runs that pass) and reports
anything asyncio took in the meantime, which makes the connection count as readable (expired),
as the poll would have. So a request costs two ``epoll_ctl`` calls, not two per chunk.

Installed through ``pool_probe.ProbedAnyIOStream``, which wraps every stream the pool opens; a
stream whose anyio internals changed shape is left as anyio made it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from anyio._backends import _asyncio as anyio_asyncio

HIGH_WATER = 256 * 1024
"""Bytes queued in anyio's stream above which reading pauses. A TTS stream is
~130 KB/s per guild, so a consumer that keeps up never gets near it; one that stalls holds at
most this plus one ``recv`` (asyncio reads up to 256 KB at a time) instead of the kernel's buffer."""

_SOCKET_STREAM: Any = getattr(anyio_asyncio, "SocketStream", None)
_PROTOCOL: Any = getattr(anyio_asyncio, "StreamProtocol", None)


def _shape_is_known() -> bool:
    code = getattr(getattr(_SOCKET_STREAM, "receive", None), "__code__", None)
    names = () if code is None else code.co_names
    return (_PROTOCOL is not None and "resume_reading" in names and "pause_reading" in names
            and "read_queue" in names and "read_event" in names)


_KNOWN = _shape_is_known()


class _SteadyTransport:
    """The transport as anyio's stream sees it: its pause after every wait is skipped."""

    def __init__(self, transport: asyncio.Transport, protocol: Any) -> None:
        self.transport = transport
        self.protocol = protocol  # anyio's StreamProtocol: read_queue, is_at_eof, exception
        self.arrived = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)

    def resume_reading(self) -> None:
        # anyio calls this only before waiting on an empty queue: the consumer has caught up.
        self.arrived = 0
        self.transport.resume_reading()  # a no-op (no syscall) while still reading

    def pause_reading(self) -> None:
        """anyio's pause after each wait: reading goes on (see the module docstring)."""

    def park(self) -> bool:
        """Stop reading (the connection is idle in the pool); True if asyncio already took bytes,
        the server's EOF or an error, which the pool's poll can no longer see."""
        self.transport.pause_reading()
        protocol = self.protocol
        return bool(protocol.read_queue) or protocol.is_at_eof or protocol.exception is not None


class _Counting(asyncio.Protocol):
    """anyio's protocol, handed each event as before, with a count that pauses a stalled reader."""

    def __init__(self, inner: Any, steady: _SteadyTransport) -> None:
        self._inner = inner
        self._steady = steady

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)
        steady = self._steady
        steady.arrived += len(data)
        if steady.arrived > HIGH_WATER:
            # An upper bound (nothing counts what anyio hands out); sum the queue only now, so a
            # consumer that keeps up without ever finding the queue empty is not paused.
            steady.arrived = sum(map(len, self._inner.read_queue))
            if steady.arrived > HIGH_WATER:
                steady.transport.pause_reading()

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()  # type: ignore[no-any-return]  # anyio's protocol is untyped here

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


def keep_reading(stream: Any) -> Any:
    """Make an anyio asyncio socket stream keep reading while in use; anything else (a TLS stream
    over one already made so, another backend, a changed anyio) is returned untouched."""
    if not _KNOWN or type(stream) is not _SOCKET_STREAM:
        return stream
    transport = getattr(stream, "_transport", None)
    protocol = getattr(stream, "_protocol", None)
    if not isinstance(transport, asyncio.Transport) or not isinstance(protocol, _PROTOCOL):
        return stream
    steady = _SteadyTransport(transport, protocol)
    transport.set_protocol(_Counting(protocol, steady))
    stream._transport = steady
    return stream


def park(stream: Any) -> bool:
    """Stop reading an idle connection's socket; True if asyncio already received something on it
    (the connection then counts as readable). False, untouched, for a stream not made steady."""
    socket_stream = getattr(stream, "transport_stream", stream)  # a TLSStream wraps the socket stream
    steady = getattr(socket_stream, "_transport", None)
    return steady.park() if isinstance(steady, _SteadyTransport) else False
