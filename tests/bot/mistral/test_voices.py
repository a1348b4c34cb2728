from __future__ import annotations

import pytest
from mistralai.client import Mistral

from bot.audio.reference import compact_reference
from bot.audio.wav import pcm16_to_wav
from bot.mistral import RequestRejected, RetryPolicy, ServiceUnavailable
from bot.mistral.voices import VoiceRegistry
from tests.fakes.mistral import FakeMistral
from tests.fakes.synth import speech_like

SAMPLE = compact_reference(pcm16_to_wav((speech_like(10.0, 24_000) * 20_000).astype("<i2").tobytes(),
                                        sample_rate=24_000))


async def test_registers_a_voice_and_deletes_it(fake: FakeMistral, client: Mistral, policy: RetryPolicy) -> None:
    registry = VoiceRegistry(client, retry=policy)
    voice_id = await registry.register(name="voxcord guild 1", sample_mp3=SAMPLE, languages=["fr"])
    assert voice_id is not None and fake.voices[voice_id].sample == SAMPLE
    assert fake.voices[voice_id].languages == ["fr"]
    assert await registry.delete(voice_id) is True
    assert fake.voices == {}
    assert await registry.delete(voice_id) is False  # already gone: nothing to do


@pytest.mark.parametrize("status", [402, 403])
async def test_a_plan_without_custom_voices_gets_none(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy, status: int
) -> None:
    fake.voice_creation_refused = status
    assert await VoiceRegistry(client, retry=policy).register(name="g", sample_mp3=SAMPLE) is None
    assert len(fake.requests_to("voices")) == 1  # a refusal is not retried


async def test_outages_are_retried_and_other_refusals_raise(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy
) -> None:
    registry = VoiceRegistry(client, retry=policy)
    fake.faults.fail_next("voices", 1, status=503)
    assert await registry.register(name="g", sample_mp3=SAMPLE) is not None
    fake.faults.fail_next("voices", 4, status=503)
    with pytest.raises(ServiceUnavailable):
        await registry.register(name="g", sample_mp3=SAMPLE)
    with pytest.raises(RequestRejected):
        await registry.register(name="g", sample_mp3=b"not audio")  # 422


async def test_custom_voice_ids_reads_every_page(fake: FakeMistral, client: Mistral, policy: RetryPolicy) -> None:
    registry = VoiceRegistry(client, retry=policy)
    ids = {await registry.register(name=f"g{n}", sample_mp3=SAMPLE) for n in range(3)}
    assert await registry.custom_voice_ids(page_size=2) == ids
    assert len(fake.requests_to("voices")) == 3 + 2  # three creations, two pages
