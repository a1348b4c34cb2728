"""One retry policy for every Mistral call, on tenacity, in injectable time.

The SDK has its own backoff (``RetryConfig``); every call here passes ``NO_SDK_RETRIES`` so a
request is retried by exactly one layer and our budget (attempts and total seconds) holds.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import httpx2
from mistralai.client import errors as sdk_errors
from mistralai.client.utils import BackoffStrategy, RetryConfig
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from .errors import MistralError, RateLimited, RequestRejected, ServiceTimeout, ServiceUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

class RetryObserver(Protocol):
    """Told of each failed attempt and each retry (bot/metrics counts them); must not raise."""

    def failed(self, operation: str, error: MistralError) -> None: ...

    def retrying(self, operation: str, error: MistralError) -> None: ...


NO_SDK_RETRIES = RetryConfig("none", BackoffStrategy(0, 0, 1.0, 0), retry_connection_errors=False)
"""Pass as ``retries=`` on every SDK call: the SDK must not retry behind the policy's back."""


def parse_retry_after(headers: Mapping[str, str], *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds from ``Retry-After`` (delta-seconds or HTTP-date) or ``retry-after-ms``; ``None`` if absent."""
    lowered = {key.lower(): value for key, value in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def classify(exc: BaseException, operation: str) -> MistralError | None:
    """Our error for an SDK/transport failure, or ``None`` for anything that is a bug, not an outage."""
    if isinstance(exc, MistralError):
        return exc
    if isinstance(exc, sdk_errors.MistralError):
        status = exc.status_code
        if status == 429:
            retry_after = parse_retry_after(exc.headers)
            return RateLimited(f"{operation}: rate limited (HTTP 429)", operation=operation,
                               retry_after=retry_after)
        if status == 408 or status >= 500:
            return ServiceUnavailable(f"{operation}: service unavailable (HTTP {status})",
                                      operation=operation, status=status)
        if status >= 400:
            return RequestRejected(f"{operation}: request rejected (HTTP {status})",
                                   operation=operation, status=status)
        return MistralError(f"{operation}: unexpected response (HTTP {status})", operation=operation,
                            status=status)
    if isinstance(exc, httpx2.TimeoutException | TimeoutError):
        return ServiceTimeout(f"{operation}: timed out ({type(exc).__name__})", operation=operation)
    if isinstance(exc, httpx2.TransportError | sdk_errors.NoResponseError | OSError):
        # Only the class name: transport messages can quote URLs or proxy responses.
        message = f"{operation}: connection failed ({type(exc).__name__})"
        return ServiceUnavailable(message, operation=operation)
    return None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries 429 (honouring ``Retry-After``, capped), 408, 5xx, connection errors and timeouts.

    Backoff is exponential with full jitter: ``random() * min(max_delay, base_delay * 2**(n-1))``.
    Both ``max_attempts`` and ``max_total_seconds`` bound the work; a retry whose wait would end
    past the total budget is not attempted. ``sleep`` and ``clock`` must agree (tests pass a
    virtual clock whose sleep advances it).
    """

    max_attempts: int = 4
    max_total_seconds: float = 20.0
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 15.0
    sleep: Sleep = field(default=asyncio.sleep, repr=False)
    random: Callable[[], float] = field(default=random.random, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    observer: RetryObserver | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def delay_for(self, attempt_number: int, error: BaseException | None) -> float:
        """Seconds to wait after failed attempt ``attempt_number`` (1-based)."""
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return min(error.retry_after, self.max_retry_after)
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt_number - 1))
        return self.random() * ceiling

    async def run(self, operation: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Await ``attempt()`` until it succeeds, fails for good, or the budget is spent.

        Raises ``MistralError`` subclasses; exceptions that are not outages propagate untouched.
        """
        started = self.clock()
        attempts = 0

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            return self.delay_for(state.attempt_number, error)

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number >= self.max_attempts:
                return True
            return self.clock() - started + state.upcoming_sleep > self.max_total_seconds

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.warning("%s failed on attempt %d/%d (%s), retrying in %.2fs", operation, state.attempt_number,
                        self.max_attempts, error, state.upcoming_sleep)
            if self.observer is not None and isinstance(error, MistralError):
                self.observer.retrying(operation, error)

        retrying = AsyncRetrying(
            sleep=self.sleep,
            stop=stop,
            wait=wait,
            retry=retry_if_exception_type((ServiceUnavailable, RateLimited)),
            before_sleep=before_sleep,
            reraise=True,
        )
        async for attempt_state in retrying:
            with attempt_state:
                attempts += 1
                try:
                    return await attempt()
                except Exception as exc:
                    error = classify(exc, operation)
                    if error is None:
                        raise
                    error.attempts = attempts
                    if self.observer is not None:
                        self.observer.failed(operation, error)
                    # ``from None``: the SDK's error text embeds the response body, which we never log.
                    raise error from None
        raise AssertionError("unreachable: tenacity either returns or reraises")  # pragma: no cover
