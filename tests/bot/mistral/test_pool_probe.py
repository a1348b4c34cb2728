"""Idle pooled connections are probed with one poll each, and a closed one is still never reused."""

from __future__ import annotations

import asyncio
import cProfile
import pstats
from collections.abc import AsyncIterator

import anyio
import httpx2
import pytest
from httpcore2._async import connection_pool
from httpcore2._backends import anyio as anyio_backend
from mistralai.client import Mistral

from bot.__main__ import MISTRAL_CONNECTION_LIMITS
from bot.audio.ogg_opus import OpusPages
from bot.mistral import RetryPolicy, SpeechSynthesizer
from bot.mistral.pool_probe import _SDK_ASSIGN as SDK_ASSIGN
from bot.mistral.pool_probe import _SDK_STREAM as SDK_STREAM
from bot.mistral.pool_probe import ProbedAnyIOStream, install_cheap_idle_probe
from tests.fakes.mistral import FakeMistral
from tests.fakes.tls import TestCertificates

NO_RETRY = RetryPolicy(max_attempts=1, max_total_seconds=5.0)


@pytest.fixture
def cheap_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(anyio_backend, "AnyIOStream", SDK_STREAM)
    monkeypatch.setattr(connection_pool.AsyncConnectionPool, "_assign_requests_to_connections", SDK_ASSIGN)
    assert install_cheap_idle_probe() and install_cheap_idle_probe()
    assert anyio_backend.AnyIOStream is ProbedAnyIOStream


@pytest.fixture
async def closing_fake(trusted_certificates: TestCertificates) -> AsyncIterator[FakeMistral]:
    # A server that closes an idle keep-alive connection long before the client would drop it
    # (MISTRAL_CONNECTION_LIMITS keeps one 55 s).
    async with FakeMistral(trusted_certificates, keepalive_timeout=0.05) as server:
        server.latency.chat_first_token = server.latency.tts_first_audio = 0.0
        yield server


async def _speak(synthesizer: SpeechSynthesizer) -> bytes:
    speech = synthesizer.synthesize("Hello.", ref_audio=None, voice_id=None)
    return b"".join([chunk.data if isinstance(chunk, OpusPages) else chunk.pcm async for chunk in speech])


@pytest.mark.usefixtures("cheap_probe")
async def test_a_connection_the_server_closed_while_idle_is_replaced_before_reuse(closing_fake: FakeMistral) -> None:
    async with httpx2.AsyncClient(limits=MISTRAL_CONNECTION_LIMITS) as http:
        client = Mistral(api_key=closing_fake.api_key, server_url=closing_fake.url, async_client=http)
        synthesizer = SpeechSynthesizer(client, model="voxtral-mini-tts-2603", retry=NO_RETRY)
        assert await _speak(synthesizer)
        async with asyncio.timeout(5):  # the server's idle close, 0.05 s after the answer
            while closing_fake.open_connections:
                await asyncio.sleep(0.01)
        # Sent on the closed connection, this would fail ("Server disconnected"): no retry here.
        assert await _speak(synthesizer)
    first, second = closing_fake.requests_to("speech")
    assert first.peer != second.peer
    assert second.status == 200


@pytest.mark.usefixtures("cheap_probe")
async def test_an_open_idle_connection_is_still_reused(fake: FakeMistral) -> None:
    fake.latency.tts_first_audio = 0.0
    async with httpx2.AsyncClient(limits=MISTRAL_CONNECTION_LIMITS) as http:
        client = Mistral(api_key=fake.api_key, server_url=fake.url, async_client=http)
        synthesizer = SpeechSynthesizer(client, model="voxtral-mini-tts-2603", retry=NO_RETRY)
        for _ in range(3):
            assert await _speak(synthesizer)
    assert len({request.peer for request in fake.requests_to("speech")}) == 1


@pytest.mark.usefixtures("cheap_probe")
async def test_a_request_beside_many_idle_connections_asks_the_kernel_once_per_pool_pass(fake: FakeMistral) -> None:
    # At 50 answering guilds ~50 connections sit idle, and the pool probes every one on each
    # request's start and finish. Each probe looked the socket up again (anyio's attribute dict and
    # getpeername()) and polled it alone; each poll also hands the GIL to any thread waiting for it.
    idle = 30
    async with httpx2.AsyncClient(limits=MISTRAL_CONNECTION_LIMITS) as http:
        client = Mistral(api_key=fake.api_key, server_url=fake.url, async_client=http)
        synthesizer = SpeechSynthesizer(client, model="voxtral-mini-tts-2603", retry=NO_RETRY)
        fake.latency.tts_first_audio = 0.05  # hold the streams open together: one connection each
        assert all(await asyncio.gather(*(_speak(synthesizer) for _ in range(idle))))
        fake.latency.tts_first_audio = 0.0
        assert await _speak(synthesizer)  # every connection has been probed once since
        profile = cProfile.Profile()
        profile.enable()
        assert await _speak(synthesizer)
        profile.disable()
    calls: dict[str, int] = {}
    for (_, _, name), (count, *_) in pstats.Stats(profile).stats.items():  # type: ignore[attr-defined]  # pstats keeps its table untyped
        calls[name] = calls.get(name, 0) + count
    passes = calls["_assign_in_one_poll"]
    assert calls["has_expired"] >= 2 * (idle - 1)  # every idle connection was probed, twice
    assert calls.get("<method 'poll' of 'select.poll' objects>", 0) <= passes
    assert calls.get("<method 'getpeername' of '_socket.socket' objects>", 0) == 0
    assert len({request.peer for request in fake.requests_to("speech")}) == idle


async def test_each_socket_answers_for_itself() -> None:
    # Many streams share one poll set: the one the server closed reads as readable, the others not.
    closers: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        closers.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    streams = [ProbedAnyIOStream(await anyio.connect_tcp("127.0.0.1", port)) for _ in range(5)]
    try:
        async with asyncio.timeout(5):
            while len(closers) < 5:
                await asyncio.sleep(0.01)
        assert [stream.get_extra_info("is_readable") for stream in streams] == [False] * 5
        closers[2].close()
        async with asyncio.timeout(5):
            while not streams[2].get_extra_info("is_readable"):
                await asyncio.sleep(0.01)
        assert [stream.get_extra_info("is_readable") for stream in streams] == [False, False, True, False, False]
        await streams[3].aclose()  # closed: readable, as httpcore's is_socket_readable says
        assert streams[3].get_extra_info("is_readable") is True
        assert streams[4].get_extra_info("is_readable") is False
    finally:
        for stream in streams:
            await stream.aclose()
        server.close()


def test_install_leaves_a_changed_backend_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    class Elsewhere(SDK_STREAM):  # type: ignore[misc]  # a stand-in for a changed httpcore2 class
        pass

    monkeypatch.setattr(anyio_backend, "AnyIOStream", Elsewhere)
    monkeypatch.setattr(connection_pool.AsyncConnectionPool, "_assign_requests_to_connections", SDK_ASSIGN)
    assert install_cheap_idle_probe() is False
    assert anyio_backend.AnyIOStream is Elsewhere
    assert connection_pool.AsyncConnectionPool._assign_requests_to_connections is SDK_ASSIGN
