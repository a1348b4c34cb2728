"""Mistral connections are kept for the next turns, not re-opened per request (TCP + TLS each time)."""

from __future__ import annotations

import asyncio

import httpx2
from mistralai.client import Mistral

from bot.__main__ import MISTRAL_CONNECTION_LIMITS
from bot.mistral import RetryPolicy, SpeechSynthesizer
from tests.fakes.mistral import FakeMistral


async def test_a_burst_of_replies_reuses_every_connection_of_the_burst_before(fake: FakeMistral) -> None:
    # 40 sentences at once, as when many guilds answer together: the second burst must find all
    # 40 connections kept alive (httpx keeps 20 by default, so 20 would be opened again).
    async with httpx2.AsyncClient(limits=MISTRAL_CONNECTION_LIMITS) as http:
        client = Mistral(api_key=fake.api_key, server_url=fake.url, async_client=http)
        synthesizer = SpeechSynthesizer(client, model="voxtral-mini-tts-2603",
                                        retry=RetryPolicy(max_attempts=1, max_total_seconds=5.0))

        async def sentence() -> bytes:
            frames = synthesizer.synthesize("Hello.", ref_audio=None, voice_id=None)
            return b"".join([chunk.pcm async for chunk in frames])

        fake.latency.tts_first_audio = 0.05  # keep the 40 streams open at the same time
        for _ in range(2):
            assert all(await asyncio.gather(*(sentence() for _ in range(40))))
    requests = fake.requests_to("speech")
    assert len(requests) == 80
    assert len({request.peer for request in requests}) == 40
