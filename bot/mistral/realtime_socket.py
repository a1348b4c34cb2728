"""How the SDK opens the realtime transcription WebSocket: one per utterance, so per turn.

**Uncompressed.** ``websockets``' defaults offer permessage-deflate; a server that accepts it makes
both sides deflate every message. Our messages are base64 PCM (~43 KB/s per talking guild), which
deflate shrinks by ~25 % at a CPU cost per message on the event loop; the socket is opened without
the offer instead (``compression=None``).

**One TLS context, the bot's.** Given a ``wss://`` URI and no ``ssl`` argument, ``websockets``
calls ``ssl.create_default_context()`` for every connection, which parses the whole trust store:
~55 ms of CPU against the system's ~140 roots on the benchmark machine, on the event loop, once per
turn (1.3 ms against a one-certificate ``SSL_CERT_FILE``, which is why the benchmarks did not show
it until the fake Mistral served TLS with a production-sized store). So the socket is given a
context, and it is the one the bot already built for Discord and the Mistral HTTP client
(``bot/__main__.py`` ``make_tls_context``): a context of its own would hold a second parsed copy
of the trust store (~0.7 MB of RSS per copy against the system roots, measured). That context
serves the trust setting it was built under (``SSL_CERT_FILE`` / ``SSL_CERT_DIR``, read at start,
as the HTTP clients read it); a socket opened under another setting (only tests change it while
running) gets a context of its own, built once for that setting. Certificates are still verified
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


def _trust_setting() -> tuple[str | None, str | None]:
    return os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")


def shared_tls_context() -> ssl.SSLContext:
    """The context given for the current trust setting, else what ``websockets`` would build for a
    ``wss://`` URI, built once per trust setting."""
    key = _trust_setting()
    context = _tls_contexts.get(key)
    if context is None:
        context = _tls_contexts[key] = ssl.create_default_context()
    return context


def _connect(uri: str, **kwargs: Any) -> Any:
    kwargs.setdefault("compression", None)
    if uri.startswith("wss:") and kwargs.get("ssl", True) is True:
        kwargs["ssl"] = shared_tls_context()
    return _SDK_WS_CONNECT(uri, **kwargs)


def install_realtime_socket_options(tls: ssl.SSLContext) -> bool:
    """Open the realtime socket uncompressed and over ``tls``, the context the bot's other clients
    use, built just now under the current trust setting (``ssl.create_default_context()`` or
    equivalent: verification is never turned off here). Idempotent; False (``tls`` unused) if the
    SDK no longer opens it through a module-level ``websockets`` ``connect``."""
    module = _realtime_module()
    current: Any = getattr(module, "connect", None)
    if current is _connect:
        _tls_contexts[_trust_setting()] = tls
        return True
    if current is None or current is not _SDK_WS_CONNECT or current.__module__ != "websockets.asyncio.client":
        log.debug("mistralai realtime transcription changed shape; leaving its socket options alone")
        return False
    _tls_contexts[_trust_setting()] = tls
    module.connect = _connect
    return True
