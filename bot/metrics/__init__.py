"""Prometheus metrics and the health check (issue 14): families, the feeds that count, the server."""

from bot.metrics.families import Metrics
from bot.metrics.loop_lag import LoopLagMonitor
from bot.metrics.mistral import RetryMetrics
from bot.metrics.server import HealthCheck, MetricsServer, gateway_connected, serve_metrics
from bot.metrics.turns import TurnMetrics
from bot.metrics.usage import CountedMeter
from bot.metrics.voice import VoiceMetrics

__all__ = [
    "CountedMeter",
    "HealthCheck",
    "LoopLagMonitor",
    "Metrics",
    "MetricsServer",
    "RetryMetrics",
    "TurnMetrics",
    "VoiceMetrics",
    "gateway_connected",
    "serve_metrics",
]
