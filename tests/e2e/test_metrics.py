"""/metrics and /healthz of the real bot, assembled as ``python -m bot`` does, against the fakes."""

from __future__ import annotations

import asyncio
import itertools
import os
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.discord import FakeDiscord
from tests.harness import build_world, running_bot, settings_for
from tests.services import PostgresServer, free_port

_names = itertools.count()


async def get(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}{path}") as response:
        return response.status, await response.text()


async def wait_health(port: int, status: int, deadline: float = 20.0) -> str:
    """The /healthz body once it answers ``status`` (the bot's state changes asynchronously)."""
    seen: tuple[int, str] | None = None
    try:
        async with asyncio.timeout(deadline):
            while (seen := await get(port, "/healthz"))[0] != status:
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"/healthz never answered {status}; last: {seen}") from None
    return seen[1]


async def test_healthz_follows_the_gateway_and_the_database(
    fake_discord: FakeDiscord, fake_discord_env: dict[str, str], postgres_server: PostgresServer | str,
    tmp_path: Path,
) -> None:
    if isinstance(postgres_server, str):
        pytest.skip("needs the test cluster itself, to drop the bot's database under it")
    name = f"voxcord_health_{os.getpid()}_{next(_names)}"
    url = postgres_server.create_database(name)
    port = free_port()
    build_world(fake_discord)
    settings = settings_for(fake_discord, tmp_path, database_url=url, metrics_port=port)
    try:
        async with running_bot(fake_discord, settings):
            assert await wait_health(port, 200) == "ok\n"

            # A gateway outage: the socket drops and reconnecting is refused for a while.
            fake_discord.refuse_gateway()
            await fake_discord.drop_gateway()
            assert await wait_health(port, 503) == "gateway: not connected\n"
            fake_discord.refuse_gateway(False)
            assert await wait_health(port, 200) == "ok\n"

            # The database goes away (dropdb --force ends the bot's connections too).
            await asyncio.to_thread(postgres_server.drop_database, name)
            body = await wait_health(port, 503)
            assert body.startswith("database: ") and "gateway" not in body, body
            assert name not in body and "postgresql://" not in body
    finally:
        await asyncio.to_thread(postgres_server.drop_database, name)
