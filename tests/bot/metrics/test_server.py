"""/metrics and /healthz over real HTTP on a free loopback port."""

from __future__ import annotations

import asyncio

import aiohttp

from bot.metrics import HealthCheck, Metrics, serve_metrics


async def healthy_database() -> int:
    return 3


async def get(port: int, path: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}{path}") as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


async def test_metrics_are_served_as_prometheus_text() -> None:
    metrics = Metrics()
    metrics.turns.labels("answered").inc(2)
    health = HealthCheck(gateway=lambda: True, database=healthy_database)
    async with serve_metrics("127.0.0.1", 0, metrics.registry, health) as server:
        status, content_type, body = await get(server.port, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    assert 'voxcord_turns_total{outcome="answered"} 2.0' in body
    assert "# TYPE voxcord_turn_stage_seconds histogram" in body
    # Only our own registry: nothing from prometheus-client's global one (process_*, python_gc_*).
    assert "python_gc" not in body and "process_cpu" not in body


async def test_healthz_is_200_only_while_gateway_and_database_both_answer() -> None:
    connected = [True]
    database_error: list[Exception] = []

    async def database() -> int:
        if database_error:
            raise database_error[0]
        return 3

    health = HealthCheck(gateway=lambda: connected[0], database=database)
    async with serve_metrics("127.0.0.1", 0, Metrics().registry, health) as server:
        assert (await get(server.port, "/healthz"))[::2] == (200, "ok\n")
        connected[0] = False
        status, _, body = await get(server.port, "/healthz")
        assert (status, body) == (503, "gateway: not connected\n")
        connected[0] = True
        database_error.append(ConnectionRefusedError("postgresql://voxcord:hunter2@db/voxcord refused"))
        status, _, body = await get(server.port, "/healthz")
        assert (status, body) == (503, "database: ConnectionRefusedError\n")  # the class, never the message
        database_error.clear()
        assert (await get(server.port, "/healthz"))[0] == 200


async def test_a_database_that_never_answers_is_unhealthy_not_a_hung_probe() -> None:
    async def stuck() -> None:
        await asyncio.Event().wait()

    problems = await HealthCheck(gateway=lambda: True, database=stuck, timeout=0.01).problems()
    assert problems == ["database: no answer within 0.01 s"]
