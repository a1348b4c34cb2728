"""Mistral failures and retries, counted through the retry policy's observer hook."""

from __future__ import annotations

from bot.metrics.families import Metrics
from bot.mistral.errors import MistralError, RateLimited, RequestRejected, ServiceTimeout, ServiceUnavailable


def error_kind(error: MistralError) -> str:
    """A small fixed set of label values (never the message: it could name a URL)."""
    if isinstance(error, RateLimited):
        return "rate_limited"
    if isinstance(error, ServiceTimeout):  # before its base class ServiceUnavailable
        return "timeout"
    if isinstance(error, ServiceUnavailable):
        return "unavailable"
    if isinstance(error, RequestRejected):
        return "rejected"
    return "other"


class RetryMetrics:
    """``bot.mistral.retry.RetryObserver``: each failed attempt and each retry, by operation and kind."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def failed(self, operation: str, error: MistralError) -> None:
        self._metrics.mistral_errors.labels(operation, error_kind(error)).inc()

    def retrying(self, operation: str, error: MistralError) -> None:
        self._metrics.mistral_retries.labels(operation, error_kind(error)).inc()
