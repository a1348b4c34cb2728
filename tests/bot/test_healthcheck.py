"""``python -m bot.healthcheck``, the container's HEALTHCHECK, against a real /healthz."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from bot.healthcheck import health_url, main
from bot.metrics import HealthCheck, Metrics, serve_metrics


def test_the_probe_dials_loopback_when_the_bot_listens_on_every_address() -> None:
    assert health_url({"METRICS_PORT": "9464", "METRICS_HOST": "0.0.0.0"}) == "http://127.0.0.1:9464/healthz"
    assert health_url({"METRICS_PORT": "9464"}) == "http://127.0.0.1:9464/healthz"
    assert health_url({"METRICS_PORT": "80", "METRICS_HOST": "::"}) == "http://[::1]:80/healthz"
    assert health_url({"METRICS_PORT": "80", "METRICS_HOST": "10.0.0.5"}) == "http://10.0.0.5:80/healthz"
    assert health_url({}) is None
    assert health_url({"METRICS_PORT": ""}) is None
    assert health_url({"METRICS_PORT": "0"}) is None


async def test_exit_status_follows_healthz(capsys: pytest.CaptureFixture[str]) -> None:
    connected = [True]

    async def database() -> None:
        return None

    health = HealthCheck(gateway=lambda: connected[0], database=database)
    async with serve_metrics("127.0.0.1", 0, Metrics().registry, health) as server:
        env = {"METRICS_PORT": str(server.port), "METRICS_HOST": "0.0.0.0"}
        assert await asyncio.to_thread(main, env) == 0
        assert capsys.readouterr().out.strip() == "ok"
        connected[0] = False
        assert await asyncio.to_thread(main, env) == 1
        assert capsys.readouterr().err.strip() == "HTTP 503: gateway: not connected"
    # Nothing listening any more: unhealthy, not a traceback.
    assert await asyncio.to_thread(main, env) == 1
    assert main({}) == 1


def test_it_imports_nothing_heavy() -> None:
    # It runs every 30 s in the container: discord.py, pydantic or the SDK would cost a second each time.
    code = ("import sys, bot.healthcheck; heavy = {'discord', 'pydantic', 'mistralai', 'aiohttp', 'numpy'}; "
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
