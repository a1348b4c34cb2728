"""The SDK's connections keep reading while a response streams in, and still hand the pool's probe
an idle socket it can judge; a stalled reader still stops reading."""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import httpx2
import pytest
from httpcore2._async import connection_pool
from httpcore2._backends import anyio as anyio_backend
from mistralai.client import Mistral

from bot.__main__ import MISTRAL_CONNECTION_LIMITS
from bot.mistral import RetryPolicy, SpeechSynthesizer
from bot.mistral.pool_probe import _SDK_ASSIGN as SDK_ASSIGN
from bot.mistral.pool_probe import _SDK_STREAM as SDK_STREAM
from bot.mistral.pool_probe import ProbedAnyIOStream, install_cheap_idle_probe
from bot.mistral.steady_read import HIGH_WATER
from tests.fakes.mistral import FakeMistral
from tests.fakes.tls import make_test_certificates

NO_RETRY = RetryPolicy(max_attempts=1, max_total_seconds=5.0)
SENTENCES = 3


@pytest.fixture
def probed_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(anyio_backend, "AnyIOStream", SDK_STREAM)
    monkeypatch.setattr(connection_pool.AsyncConnectionPool, "_assign_requests_to_connections", SDK_ASSIGN)
    assert install_cheap_idle_probe()


def _epoll_changes(profile: cProfile.Profile) -> int:
    calls = 0
    for (_, _, name), (count, *_) in pstats.Stats(profile).stats.items():  # type: ignore[attr-defined]  # pstats keeps its table untyped
        if name in ("<method 'register' of 'select.epoll' objects>", "<method 'unregister' of 'select.epoll' objects>"):
            calls += count
    return calls


@pytest.mark.usefixtures("probed_streams")
async def test_a_streamed_response_changes_the_loops_epoll_set_a_few_times_not_per_chunk(fake: FakeMistral) -> None:
    # anyio resumed reading before and paused it after every wait on an empty queue: an epoll
    # register and unregister per TTS chunk, ~1 ms each at 50 guilds (the GIL convoy).
    fake.latency.tts_first_audio = 0.0
    fake.latency.tts_chunk_interval = 0.02  # each chunk is waited for
    async with httpx2.AsyncClient(limits=MISTRAL_CONNECTION_LIMITS) as http:
        client = Mistral(api_key=fake.api_key, server_url=fake.url, async_client=http)
        synthesizer = SpeechSynthesizer(client, model="voxtral-mini-tts-2603", retry=NO_RETRY)
        text = " ".join(["Hello there."] * SENTENCES)
        assert [chunk async for chunk in synthesizer.synthesize(text, ref_audio=None, voice_id=None)]
        profile = cProfile.Profile()
        profile.enable()
        chunks = [chunk async for chunk in synthesizer.synthesize(text, ref_audio=None, voice_id=None)]
        profile.disable()
    assert len(chunks) >= 20
    assert _epoll_changes(profile) <= 4  # resume for the response, park when idle: once each
    assert len({request.peer for request in fake.requests_to("speech")}) == 1


async def _served(handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], object],
                  ssl_context: ssl.SSLContext | None = None) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ssl_context)  # type: ignore[arg-type]  # handler's result is unused
    return server, server.sockets[0].getsockname()[1]


@pytest.fixture
async def idle_peer() -> AsyncIterator[tuple[int, list[asyncio.StreamWriter]]]:
    writers: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        writer.write(b"response")

    server, port = await _served(accept)
    yield port, writers
    server.close()


async def _read_response(stream: ProbedAnyIOStream) -> None:
    assert await stream.read(100) == b"response"


@pytest.mark.parametrize("after_response", [b"", b"stray"])
async def test_what_asyncio_took_while_idle_still_counts_as_readable(
        idle_peer: tuple[int, list[asyncio.StreamWriter]], after_response: bytes) -> None:
    # Reading goes on after the response; the server's close (or stray bytes) may reach asyncio
    # before the pool's probe parks the socket, and the probe must still see the connection as gone.
    port, writers = idle_peer
    stream = ProbedAnyIOStream(await anyio.connect_tcp("127.0.0.1", port))
    try:
        await _read_response(stream)
        if after_response:
            writers[0].write(after_response)
        else:
            writers[0].close()
        await asyncio.sleep(0.05)  # the loop reads it
        assert stream.get_extra_info("is_readable") is True
    finally:
        await stream.aclose()


async def test_an_idle_connection_is_parked_and_reads_as_not_readable(
        idle_peer: tuple[int, list[asyncio.StreamWriter]]) -> None:
    port, writers = idle_peer
    stream = ProbedAnyIOStream(await anyio.connect_tcp("127.0.0.1", port))
    try:
        await _read_response(stream)
        assert stream.get_extra_info("is_readable") is False
        writers[0].close()  # now only the kernel sees the close, and the poll with it
        async with asyncio.timeout(5):
            while not stream.get_extra_info("is_readable"):
                await asyncio.sleep(0.01)
    finally:
        await stream.aclose()


@pytest.mark.usefixtures("probed_streams")
@pytest.mark.parametrize("tls", [False, True])
async def test_a_reader_that_stalls_stops_reading_past_the_high_water_mark(tmp_path: Path, tls: bool) -> None:
    # Reading goes on between waits, so the pause a stalled consumer needs is ours: without it
    # asyncio would queue everything the server sends (TLS records go through the same socket).
    total = 16 * HIGH_WATER

    async def flood(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"x" * total)
        await writer.drain()
        writer.close()

    certificates = make_test_certificates(tmp_path) if tls else None
    server, port = await _served(flood, certificates.server_context() if certificates else None)
    raw = await anyio.connect_tcp("127.0.0.1", port)
    stream = ProbedAnyIOStream(raw)
    if certificates:  # as httpcore2 dials HTTPS: the TLS stream over the same socket stream
        stream = await stream.start_tls(certificates.client_context(), server_hostname="localhost")
        assert isinstance(stream, ProbedAnyIOStream)
    try:
        received = len(await stream.read(1024))
        await asyncio.sleep(0.2)  # the consumer stalls; the server keeps sending
        held = sum(map(len, raw._protocol.read_queue))  # type: ignore[attr-defined]  # anyio's queue: what the process holds
        assert 0 < held <= 2 * HIGH_WATER
        while received < total:
            chunk = await stream.read(65536)
            assert chunk
            received += len(chunk)
        assert received == total
    finally:
        await stream.aclose()
        server.close()
