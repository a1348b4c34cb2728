"""``/metrics`` (Prometheus text) and ``/healthz`` on the bot's own event loop (aiohttp).

Off unless METRICS_PORT is set. Bound to METRICS_HOST, 127.0.0.1 by default: the numbers name no
guild or user, but an operator decides who may read them. Why on the bot's loop rather than
prometheus-client's own thread: docs/decisions.md ("Metrics and health").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import discord
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

log = logging.getLogger(__name__)

# A probe that has not answered within this is a failed probe: Docker's HEALTHCHECK and
# Kubernetes give up after a few seconds, and a health check must never hang.
PROBE_TIMEOUT_SECONDS = 2.0


def gateway_connected(client: discord.AutoShardedClient) -> bool:
    """Every shard this process runs has an open gateway socket, and the client is ready.

    While discord.py reconnects a dropped shard its socket is closed: the check says so until the
    shard is back, which is what a container orchestrator should see.
    """
    if client.is_closed() or not client.is_ready():
        return False
    shards = client.shards
    return bool(shards) and not any(shard.is_closed() for shard in shards.values())


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """Healthy when the gateway is connected and the database answers a query in time."""

    gateway: Callable[[], bool]
    database: Callable[[], Awaitable[object]]
    timeout: float = PROBE_TIMEOUT_SECONDS

    async def problems(self) -> list[str]:
        """What is wrong, one short line each (no URL, no message text: only error class names)."""
        found = []
        if not self.gateway():
            found.append("gateway: not connected")
        try:
            async with asyncio.timeout(self.timeout):
                await self.database()
        except TimeoutError:
            found.append(f"database: no answer within {self.timeout:g} s")
        except Exception as error:
            found.append(f"database: {type(error).__name__}")
        return found


class MetricsServer:
    """The running HTTP server; ``port`` is the bound one (METRICS_PORT=0 picks a free one)."""

    def __init__(self, runner: web.AppRunner) -> None:
        self._runner = runner

    @property
    def port(self) -> int:
        addresses = self._runner.addresses
        return int(addresses[0][1]) if addresses else 0


def build_app(registry: CollectorRegistry, health: HealthCheck) -> web.Application:
    async def healthz(_request: web.Request) -> web.Response:
        problems = await health.problems()
        if problems:
            return web.Response(status=503, text="\n".join(problems) + "\n")
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_get("/metrics", make_aiohttp_handler(registry))
    app.router.add_get("/healthz", healthz)
    return app


@contextlib.asynccontextmanager
async def serve_metrics(
    host: str, port: int, registry: CollectorRegistry, health: HealthCheck
) -> AsyncIterator[MetricsServer]:
    # No access log: a scrape every 15 s would be most of the log.
    runner = web.AppRunner(build_app(registry, health), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        server = MetricsServer(runner)
        log.info("Metrics and health on http://%s:%d/metrics and /healthz", host, server.port)
        yield server
    finally:
        await runner.cleanup()
