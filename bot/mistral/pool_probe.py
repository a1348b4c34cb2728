"""A cheap idle-connection probe for the HTTP client under the ``mistralai`` SDK.

Before it hands out or keeps an idle keep-alive connection, ``httpcore2``'s pool asks each idle
one whether the server closed it meanwhile (``has_expired``: "is the socket readable?"). It asks
every idle connection on every request start and finish (``_assign_requests_to_connections``), and
at 50 answering guilds ~50 connections are idle at any moment: they are the pool the next chat and
speech requests take, kept so that none pays a new TCP + TLS handshake (``MISTRAL_CONNECTION_LIMITS``
in ``bot/__main__.py``). On the anyio backend each answer cost ~55 µs in the loop's profile: ``get_extra_info``
fetched the raw socket through anyio's typed attributes, which build a dict of attribute getters
and call ``getpeername()`` on every lookup (through the TLS stream's dict as well), and then built,
filled and polled a new ``select.poll`` object. That was ~1.8 s of the loop thread per 100 turns at
50 guilds (profile in docs/benchmarks.md, section 6).

The stream class here answers the same question with the same syscall, ``poll`` for POLLIN with a
zero timeout on the same socket, but looks the socket up once per connection, and a pool pass asks
the kernel once for all of them: every pooled socket sits in one poll set, and the first probe of a
pass polls it (the pass runs without awaiting, so every answer is of the same instant, as before).
Each ``poll`` also hands the GIL to any thread waiting for it (the packet sender, the FFmpeg pipe
thread) and waits to get it back: under load ~20 µs per probe in the loop's profile, so one per pass
instead of one per idle connection matters more than the syscall itself. A socket that is closed
(fileno -1) counts as readable, as in ``is_socket_readable``. Every other ``get_extra_info`` lookup
is the SDK's own.

Installed by replacing the module-level name ``AnyIOStream`` that ``AnyIOBackend`` looks up when it
wraps a new TCP or TLS stream, and the pool's ``_assign_requests_to_connections`` with a wrapper
that marks the pass; left alone if either changed shape. The same stream keeps its socket reading
while a response streams in and parks it when the pool first probes it idle (``steady_read.py``).
"""

from __future__ import annotations

import logging
import select
import socket
import threading
from typing import Any

from httpcore2._async import connection_pool
from httpcore2._backends import anyio as anyio_backend

from bot.mistral.steady_read import keep_reading, park

log = logging.getLogger(__name__)

_SDK_STREAM: Any = getattr(anyio_backend, "AnyIOStream", object)
_POOL: Any = getattr(connection_pool, "AsyncConnectionPool", None)
_SDK_ASSIGN: Any = getattr(_POOL, "_assign_requests_to_connections", None)


class _Sockets:
    """Every pooled connection's socket in one poll set, so one ``poll(0)`` answers for all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # a poll object refuses concurrent use
        self._poller = select.poll()
        self._owners: dict[int, socket.socket] = {}

    def add(self, sock: socket.socket, fd: int) -> None:
        with self._lock:
            self._poller.register(fd, select.POLLIN)
            self._owners[fd] = sock

    def discard(self, sock: socket.socket, fd: int) -> None:
        with self._lock:
            if self._owners.get(fd) is sock:
                del self._owners[fd]
                self._poller.unregister(fd)

    def ready(self) -> frozenset[int]:
        """The fds with any event (readable, hung up, error), as ``is_socket_readable`` counts them."""
        with self._lock:
            events = self._poller.poll(0)
            for fd, _event in events:
                owner = self._owners.get(fd)
                if owner is None or owner.fileno() != fd:  # closed without aclose: forget the fd
                    self._owners.pop(fd, None)
                    self._poller.unregister(fd)
        return frozenset(fd for fd, _event in events)


_SOCKETS = _Sockets()
_pass = threading.local()  # .ready: the poll answered in the pool pass under way, else None


class ProbedAnyIOStream(_SDK_STREAM):  # type: ignore[misc]  # httpcore2's AnyIOStream, resolved at import
    """``httpcore2``'s ``AnyIOStream`` whose readability probe is one poll per pool pass."""

    _probe: tuple[socket.socket, int] | None = None

    def __init__(self, stream: Any) -> None:
        super().__init__(keep_reading(stream))

    def get_extra_info(self, info: str) -> Any:
        if info != "is_readable":
            return super().get_extra_info(info)
        if park(self._stream):  # asyncio took the server's close or bytes before the poll could
            return True
        probe = self._probe
        if probe is None:
            sock = super().get_extra_info("socket")  # the SDK's lookup, once
            fd = -1 if sock is None else sock.fileno()
            if fd < 0:
                return super().get_extra_info(info)  # no socket: the SDK's answer (readable)
            probe = self._probe = (sock, fd)
            _SOCKETS.add(sock, fd)
        sock, fd = probe
        if sock.fileno() != fd:
            return True  # closed since: as a closed socket in is_socket_readable
        if getattr(_pass, "active", False):
            if _pass.ready is None:
                _pass.ready = _SOCKETS.ready()
            return fd in _pass.ready
        return fd in _SOCKETS.ready()

    async def aclose(self) -> None:
        if self._probe is not None:
            _SOCKETS.discard(*self._probe)
        await super().aclose()


def _assign_in_one_poll(self: Any) -> Any:
    """The pool's pass, with the idle connections it probes answered by one ``poll``: it runs
    without awaiting, so the answers are those of the same instant, as when each was asked."""
    _pass.active, _pass.ready = True, None
    try:
        return _SDK_ASSIGN(self)
    finally:
        _pass.active, _pass.ready = False, None


def _names(func: Any) -> tuple[str, ...]:
    code = getattr(func, "__code__", None)
    return () if code is None else tuple(code.co_names)


def install_cheap_idle_probe() -> bool:
    """Probe idle pooled connections with one ``poll`` per pool pass. Idempotent; False (left
    alone) if ``httpcore2``'s anyio backend or pool changed shape."""
    current: Any = getattr(anyio_backend, "AnyIOStream", None)
    assign: Any = getattr(_POOL, "_assign_requests_to_connections", None)
    if current is ProbedAnyIOStream and assign is _assign_in_one_poll:
        return True
    backend = getattr(anyio_backend, "AnyIOBackend", None)
    wrappers = (getattr(backend, "connect_tcp", None), getattr(backend, "connect_unix_socket", None),
                getattr(_SDK_STREAM, "start_tls", None))
    if (current not in (_SDK_STREAM, ProbedAnyIOStream) or _SDK_ASSIGN is None
            or assign not in (_SDK_ASSIGN, _assign_in_one_poll)
            or not hasattr(select, "poll") or "has_expired" not in _names(_SDK_ASSIGN)
            or "is_socket_readable" not in _names(getattr(_SDK_STREAM, "get_extra_info", None))
            or not all("AnyIOStream" in _names(wrapper) for wrapper in wrappers)):
        log.debug("httpcore2's anyio backend or pool changed shape; its idle-connection probe is left alone")
        return False
    anyio_backend.AnyIOStream = ProbedAnyIOStream  # type: ignore[misc]  # patching the httpcore2 module
    _POOL._assign_requests_to_connections = _assign_in_one_poll
    return True
