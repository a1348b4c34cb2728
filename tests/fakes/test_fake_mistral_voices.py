"""The fake's voices API and upload time, driven through the real SDK (whose models validate)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import numpy as np
import pytest
from mistralai.client import Mistral
from mistralai.client import errors as sdk_errors

from bot.audio.reference import compact_reference
from bot.audio.wav import pcm16_to_wav
from tests.fakes.mistral import FakeMistral
from tests.fakes.mistral.fixtures import RecordingSleep
from tests.fakes.synth import speech_like
from tests.fakes.tls import TestCertificates

SAMPLE = compact_reference(pcm16_to_wav((speech_like(12.0, 24_000) * 20_000).astype("<i2").tobytes(),
                                        sample_rate=24_000))


@pytest.fixture
async def fake(trusted_certificates: TestCertificates) -> AsyncIterator[FakeMistral]:
    async with FakeMistral(trusted_certificates) as server:
        yield server


@pytest.fixture
def client(fake: FakeMistral) -> Mistral:
    return Mistral(api_key=fake.api_key, server_url=fake.url)


def encoded(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


async def test_a_voice_is_created_listed_fetched_spoken_with_and_deleted(fake: FakeMistral, client: Mistral) -> None:
    voice = await client.audio.voices.create_async(name="guild 1", sample_audio=encoded(SAMPLE),
                                                   sample_filename="reference.mp3", languages=["en"])
    assert voice.type == "custom" and voice.languages == ["en"] and voice.name == "guild 1"
    assert fake.voices[voice.id].sample == SAMPLE
    assert abs(fake.voices[voice.id].sample_seconds - 12.0) < 0.1
    listed = await client.audio.voices.list_async(type_="custom")
    assert [v.id for v in listed.items] == [voice.id] and listed.total == 1
    assert (await client.audio.voices.get_async(voice_id=voice.id)).id == voice.id

    stream = await client.audio.speech.complete_async(input="Hi there.", model="voxtral-mini-tts-3-0",
                                                      voice_id=voice.id, response_format="pcm", stream=True)
    assert [event async for event in stream][-1].event == "speech.audio.done"

    await client.audio.voices.delete_async(voice_id=voice.id)
    assert fake.voices == {}
    with pytest.raises(sdk_errors.SDKError) as gone:
        await client.audio.voices.get_async(voice_id=voice.id)
    assert gone.value.status_code == 404
    with pytest.raises(sdk_errors.SDKError) as unknown:
        await client.audio.speech.complete_async(input="Hi.", model="voxtral-mini-tts-3-0", voice_id=voice.id)
    assert unknown.value.status_code == 404


async def test_a_free_plan_refuses_to_create_voices(fake: FakeMistral, client: Mistral) -> None:
    fake.voice_creation_refused = 403
    with pytest.raises(sdk_errors.SDKError) as refused:
        await client.audio.voices.create_async(name="guild 1", sample_audio=encoded(SAMPLE))
    assert refused.value.status_code == 403 and fake.voices == {}


async def test_a_sample_that_is_not_audio_or_too_short_is_refused(fake: FakeMistral, client: Mistral) -> None:
    short = compact_reference(pcm16_to_wav((speech_like(1.0, 24_000) * 20_000).astype("<i2").tobytes(),
                                           sample_rate=24_000))
    for sample in (b"not audio at all", short):
        with pytest.raises(sdk_errors.HTTPValidationError):
            await client.audio.voices.create_async(name="guild 1", sample_audio=encoded(sample))
    assert fake.voices == {}


async def test_upload_time_over_20_mbit_s_comes_before_the_first_audio(fake: FakeMistral, client: Mistral) -> None:
    sleep = RecordingSleep()
    fake.sleep = sleep  # injected: the fake reports each delay instead of waiting it
    fake.latency.tts_first_audio = 0.3
    clip = pcm16_to_wav(np.zeros(24_000 * 30, dtype="<i2").tobytes(), sample_rate=24_000)  # ~1.4 MB
    stream = await client.audio.speech.complete_async(input="Hello.", model="voxtral-mini-tts-3-0",
                                                      ref_audio=encoded(clip), response_format="pcm", stream=True)
    _ = [event async for event in stream]
    (request,) = fake.requests_to("speech")
    assert request.body_bytes > len(clip) * 4 // 3  # the base64 clip is most of the body
    upload = request.body_bytes * 8 / 20e6
    assert upload > 0.7  # today's 30 s WAV reference: ~0.8 s before any audio
    assert sleep.calls[0] == pytest.approx(upload + 0.3)
