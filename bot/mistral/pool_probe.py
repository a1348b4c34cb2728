"""A cheap idle-connection probe for the HTTP client under the ``mistralai`` SDK.

Before it hands out or keeps an idle keep-alive connection, ``httpcore2``'s pool asks each idle
one whether the server closed it meanwhile (``has_expired``: "is the socket readable?"). It asks
every idle connection on every request start and finish (``_assign_requests_to_connections``), and
at 50 answering guilds ~50 connections are idle at any moment: they are the pool the next chat and
speech requests take, kept so that none pays a new TCP + TLS handshake (``MISTRAL_CONNECTION_LIMITS``
in ``bot/__main__.py``). On the anyio backend each answer cost ~40 µs on the loop: ``get_extra_info``
fetched the raw socket through anyio's typed attributes, which build a dict of attribute getters
and call ``getpeername()`` on every lookup (through the TLS stream's dict as well), and then built,
filled and polled a new ``select.poll`` object. That was ~1.8 s of the loop thread per 100 turns at
50 guilds (profile in docs/benchmarks.md, section 6).

The stream class here answers the same question with the same syscall, ``poll`` for POLLIN with a
zero timeout on the same socket, but looks the socket up once per connection and keeps its poll
object. A socket that is closed (fileno -1) counts as readable, as in ``is_socket_readable``.
Every other ``get_extra_info`` lookup is the SDK's own.

Installed by replacing the module-level name ``AnyIOStream`` that ``AnyIOBackend`` looks up when it
wraps a new TCP or TLS stream; left alone if that module changed shape.
"""

from __future__ import annotations

import logging
import select
import socket
from typing import Any

from httpcore2._backends import anyio as anyio_backend

log = logging.getLogger(__name__)

_SDK_STREAM: Any = getattr(anyio_backend, "AnyIOStream", object)
_Probe = tuple[socket.socket, int, Any]  # the socket, its fd when registered, its select.poll


class ProbedAnyIOStream(_SDK_STREAM):  # type: ignore[misc]  # httpcore2's AnyIOStream, resolved at import
    """``httpcore2``'s ``AnyIOStream`` with its readability probe kept per connection."""

    _probe: _Probe | None = None

    def get_extra_info(self, info: str) -> Any:
        if info != "is_readable":
            return super().get_extra_info(info)
        probe = self._probe
        if probe is None:
            probe = self._probe = self._make_probe()
            if probe is None:
                return super().get_extra_info(info)  # no socket: the SDK's answer (readable)
        sock, fd, poller = probe
        if sock.fileno() != fd:
            return True  # closed since: as a closed socket in is_socket_readable
        return bool(poller.poll(0))

    def _make_probe(self) -> _Probe | None:
        sock = super().get_extra_info("socket")  # the SDK's lookup, once
        fd = -1 if sock is None else sock.fileno()
        if fd < 0:
            return None
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return sock, fd, poller


def _names(func: Any) -> tuple[str, ...]:
    code = getattr(func, "__code__", None)
    return () if code is None else tuple(code.co_names)


def install_cheap_idle_probe() -> bool:
    """Probe idle pooled connections with one ``poll`` each. Idempotent; False (left alone) if
    ``httpcore2``'s anyio backend changed shape."""
    current: Any = getattr(anyio_backend, "AnyIOStream", None)
    if current is ProbedAnyIOStream:
        return True
    backend = getattr(anyio_backend, "AnyIOBackend", None)
    wrappers = (getattr(backend, "connect_tcp", None), getattr(backend, "connect_unix_socket", None),
                getattr(current, "start_tls", None))
    if (current is None or current is not _SDK_STREAM or not hasattr(select, "poll")
            or "is_socket_readable" not in _names(getattr(current, "get_extra_info", None))
            or not all("AnyIOStream" in _names(wrapper) for wrapper in wrappers)):
        log.debug("httpcore2's anyio backend changed shape; its idle-connection probe is left alone")
        return False
    anyio_backend.AnyIOStream = ProbedAnyIOStream  # type: ignore[misc]  # patching the httpcore2 module
    return True
