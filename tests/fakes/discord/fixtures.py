"""Pytest fixtures and a client runner for tests that talk to the fake Discord.

Fixtures are plain module attributes; a test module (or a conftest) imports them, e.g.
``from tests.fakes.discord.fixtures import fake_discord, tls_certificates``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import discord
import pytest

from tests.fakes.tls import TestCertificates, make_test_certificates

from .server import FakeDiscord, routed_to


@pytest.fixture
def tls_certificates(tmp_path: Path) -> TestCertificates:
    return make_test_certificates(tmp_path / "tls")


@pytest.fixture
async def fake_discord(tls_certificates: TestCertificates) -> AsyncIterator[FakeDiscord]:
    """A started FakeDiscord with no guilds yet; build the world before starting a client."""
    async with FakeDiscord(tls_certificates) as fake:
        yield fake


def trusting_connector(certificates: TestCertificates) -> aiohttp.TCPConnector:
    """A connector that trusts the test CA; create it inside the running event loop."""
    return aiohttp.TCPConnector(ssl=certificates.client_context())


@contextlib.asynccontextmanager
async def running_client(
    fake: FakeDiscord, client: discord.Client, *, token: str = "fake-token",
    timeout: float = 10.0,  # noqa: ASYNC109 - a deadline argument reads better in tests than a wrapping asyncio.timeout
) -> AsyncIterator[discord.Client]:
    """Log ``client`` in to ``fake``, wait for on_ready, and close it cleanly on exit.

    Login runs first and on its own so a bad token raises here, not inside a background task.
    """
    with routed_to(fake):
        try:
            await client.login(token)
        except BaseException:
            await client.close()  # login opened an HTTP session; do not leak it
            raise
        connect = asyncio.create_task(client.connect(), name="fake-discord-client")
        ready = asyncio.create_task(client.wait_until_ready(), name="fake-discord-ready")
        try:
            done, _ = await asyncio.wait({connect, ready}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if connect in done:
                connect.result()  # re-raise why the client stopped before READY
                raise RuntimeError("client disconnected before it was ready")
            if ready not in done:
                raise TimeoutError(f"client not ready after {timeout} s")
            yield client
        finally:
            ready.cancel()
            await client.close()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(connect, timeout)


@pytest.fixture
def fake_discord_env(fake_discord: FakeDiscord, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Set DISCORD_API_BASE_URL, DISCORD_GATEWAY_URL and SSL_CERT_FILE as an operator would."""
    env = fake_discord.settings_env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
