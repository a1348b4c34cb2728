"""Keep the API key out of third-party debug logs.

``websockets`` logs every handshake header at DEBUG on ``websockets.client``
(``websockets/client.py``: ``"> %s: %s"``), which includes the SDK's ``Authorization: Bearer``
header for the realtime transcription socket. The filter rewrites those records in place.
"""

from __future__ import annotations

import logging

_SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key"})
LOGGERS = ("websockets.client",)


class RedactAuthorization(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (isinstance(args, tuple) and len(args) == 2 and isinstance(args[0], str)
                and args[0].lower() in _SENSITIVE_HEADERS):
            record.args = (args[0], "[redacted]")
        return True


def install_log_redaction() -> None:
    """Attach the filter to the loggers that print request headers. Idempotent."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactAuthorization) for existing in logger.filters):
            logger.addFilter(RedactAuthorization())
