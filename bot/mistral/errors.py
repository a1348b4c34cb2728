"""Errors the Mistral services raise. Messages name the operation and the HTTP status only:
never a header, a response body or the request, so the API key cannot leak into logs."""

from __future__ import annotations


class MistralError(Exception):
    """A Mistral call failed and will not be retried (any further)."""

    def __init__(self, message: str, *, operation: str, status: int | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.operation = operation
        self.status = status
        self.attempts = attempts


class ServiceUnavailable(MistralError):
    """5xx, 408, a connection failure or a timeout: the service may work again later."""


class ServiceTimeout(ServiceUnavailable):
    """No answer (or no next chunk) within the deadline."""


class RateLimited(MistralError):
    """429: over quota. ``retry_after`` is the server's hint in seconds, when it sent one."""

    def __init__(
        self, message: str, *, operation: str, retry_after: float | None, status: int = 429, attempts: int = 1
    ) -> None:
        super().__init__(message, operation=operation, status=status, attempts=attempts)
        self.retry_after = retry_after


class RequestRejected(MistralError):
    """4xx other than 408/429: the request itself is wrong (auth, validation); retrying cannot help."""
