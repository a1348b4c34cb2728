"""How the SDK opens the realtime transcription WebSocket: one per utterance, so per turn.

**Uncompressed.** ``websockets``' defaults offer permessage-deflate; a server that accepts it makes
both sides deflate every message. Our messages are base64 PCM (~43 KB/s per talking guild), which
deflate shrinks by ~25 % at a CPU cost per message on the event loop; the socket is opened without
the offer instead (``compression=None``).

**One TLS context.** Given a ``wss://`` URI and no ``ssl`` argument, ``websockets`` calls
``ssl.create_default_context()`` for every connection, which parses the whole trust store: ~55 ms
of CPU against the system's ~140 roots on the benchmark machine, on the event loop, once per turn
(1.3 ms against a one-certificate ``SSL_CERT_FILE``, which is why the benchmarks did not show it
until the fake Mistral served TLS with a production-sized store). The context is the same each
time, so it is built once per trust setting (``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` as they are when
the socket opens) and shared, as the HTTP client shares the bot's. Certificates are still verified
on every handshake; only the parsing of the roots is not repeated.

The SDK's own ``connect`` (a module-level name it looks up at call time) is wrapped, nothing
else; if a future SDK changes that shape, it is left alone.
"""

from __future__ import annotations

import importlib
import logging
import os
import ssl
from typing import Any

log = logging.getLogger(__name__)


def _realtime_module() -> Any:
    try:
        return importlib.import_module("mistralai.extra.realtime.transcription")
    except ImportError:  # the SDK without its realtime extra
        return None


_SDK_WS_CONNECT: Any = getattr(_realtime_module(), "connect", None)
_tls_contexts: dict[tuple[str | None, str | None], ssl.SSLContext] = {}


def shared_tls_context() -> ssl.SSLContext:
    """What ``websockets`` would build for a ``wss://`` URI, built once per trust setting."""
    key = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    context = _tls_contexts.get(key)
    if context is None:
        context = _tls_contexts[key] = ssl.create_default_context()
    return context


def _connect(uri: str, **kwargs: Any) -> Any:
    kwargs.setdefault("compression", None)
    if uri.startswith("wss:") and kwargs.get("ssl", True) is True:
        kwargs["ssl"] = shared_tls_context()
    return _SDK_WS_CONNECT(uri, **kwargs)


def install_realtime_socket_options() -> bool:
    """Open the realtime socket uncompressed and with the shared TLS context. Idempotent; False
    if the SDK no longer opens it through a module-level ``websockets`` ``connect``."""
    module = _realtime_module()
    current: Any = getattr(module, "connect", None)
    if current is _connect:
        return True
    if current is None or current is not _SDK_WS_CONNECT or current.__module__ != "websockets.asyncio.client":
        log.debug("mistralai realtime transcription changed shape; leaving its socket options alone")
        return False
    module.connect = _connect
    return True
