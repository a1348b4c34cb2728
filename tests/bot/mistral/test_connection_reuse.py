"""Mistral connections are kept for the next turns, not re-opened per request (TCP + TLS each time)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx2
import pytest
from mistralai.client import Mistral
from mistralai.client.utils import eventstreaming

from bot.__main__ import MISTRAL_CONNECTION_LIMITS
from bot.audio.ogg_opus import OpusPages
from bot.mistral import ChatMessage, ChatModel, RetryPolicy, SpeechSynthesizer
from bot.mistral.sdk_speedups import _SDK_STREAM_EVENTS as SDK_STREAM_EVENTS
from bot.mistral.sdk_speedups import install_fast_event_streams
from tests.fakes.mistral import FakeMistral


@pytest.mark.parametrize("burst", [40, 150])
async def test_a_burst_of_replies_reuses_every_connection_of_the_burst_before(fake: FakeMistral, burst: int) -> None:
    # ``burst`` sentences at once, as when many guilds answer together: the second burst must find
    # all of the first's connections kept alive (httpx keeps 20 by default; a cap of 100 idle ones
    # re-opened 50 of 150, which 75 guilds answering at once reach).
    async with httpx2.AsyncClient(limits=MISTRAL_CONNECTION_LIMITS) as http:
        client = Mistral(api_key=fake.api_key, server_url=fake.url, async_client=http)
        synthesizer = SpeechSynthesizer(client, model="voxtral-mini-tts-2603",
                                        retry=RetryPolicy(max_attempts=1, max_total_seconds=5.0))

        async def sentence() -> bytes:
            frames = synthesizer.synthesize("Hello.", ref_audio=None, voice_id=None)
            return b"".join([chunk.data if isinstance(chunk, OpusPages) else chunk.pcm async for chunk in frames])

        fake.latency.tts_first_audio = 0.05  # keep the streams open at the same time
        for _ in range(2):
            assert all(await asyncio.gather(*(sentence() for _ in range(burst))))
    requests = fake.requests_to("speech")
    assert len(requests) == 2 * burst
    assert len({request.peer for request in requests}) == burst


@pytest.fixture
def fast_event_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eventstreaming, "stream_events_async", SDK_STREAM_EVENTS)
    assert install_fast_event_streams()


@pytest.mark.usefixtures("fast_event_streams")
async def test_a_finished_chat_stream_leaves_its_connection_to_the_next_request(fake: FakeMistral) -> None:
    # The SDK closes a chat stream at "[DONE]" with the end of its body unread, which closes the
    # connection: the reply's first speech request, sent just then, had to open another.
    fake.latency.chat_first_token = fake.latency.tts_first_audio = 0.0
    retry = RetryPolicy(max_attempts=1, max_total_seconds=5.0)
    async with httpx2.AsyncClient(limits=MISTRAL_CONNECTION_LIMITS) as http:
        client = Mistral(api_key=fake.api_key, server_url=fake.url, async_client=http)
        chat = ChatModel(client, model="mistral-small-latest", retry=retry)
        text = "".join([d async for d in chat.stream([ChatMessage(role="user", content="Hi")], max_tokens=20)])
        speech = SpeechSynthesizer(client, model="voxtral-mini-tts-2603", retry=retry)
        assert [chunk async for chunk in speech.synthesize(text, ref_audio=None, voice_id=None)]
    [asked], [spoken] = fake.requests_to("chat"), fake.requests_to("speech")
    assert asked.peer == spoken.peer


@pytest.mark.usefixtures("fast_event_streams")
async def test_a_body_left_open_after_done_still_ends_the_stream() -> None:
    # The drain after "[DONE]" is bounded: the reply's end must not wait for such a server.
    chunk = {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": "Hi."}, "finish_reason": "stop"}]}

    async def body() -> AsyncIterator[bytes]:
        yield f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
        await asyncio.Event().wait()  # a server that never ends the body

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(answer)) as http:
        client = Mistral(api_key="k" * 32, server_url="http://mistral.invalid", async_client=http)
        chat = ChatModel(client, model="m", retry=RetryPolicy(max_attempts=1, max_total_seconds=5.0))
        async with asyncio.timeout(5):  # the failure guard: the drain gives up on its own, far sooner
            assert [d async for d in chat.stream([ChatMessage(role="user", content="Hi")], max_tokens=5)] == ["Hi."]
