"""Speech as Ogg Opus (the default): whole pages with their audio's duration, and the fallback
to pcm for a server that refuses opus."""

from __future__ import annotations

import asyncio
import logging

import pytest
from mistralai.client import Mistral

from bot.audio.frames import PcmFrame
from bot.audio.ogg_opus import OggOpusReader, OpusPages
from bot.mistral import RequestRejected, RetryPolicy, SpeechSynthesizer
from tests.fakes.mistral import FakeMistral, speech_samples

TEXT = "The quick brown fox jumps over the lazy dog."


def tts(client: Mistral, policy: RetryPolicy) -> SpeechSynthesizer:
    return SpeechSynthesizer(client, model="voxtral-mini-tts-3-0", retry=policy, response_format="opus")


async def test_opus_comes_as_whole_pages_headers_with_the_first_audio(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy
) -> None:
    synthesizer = tts(client, policy)
    assert synthesizer.response_format == "opus"
    chunks = [chunk async for chunk in synthesizer.synthesize(TEXT, ref_audio=None, voice_id=None)]
    assert all(isinstance(chunk, OpusPages) for chunk in chunks)
    pages = [chunk for chunk in chunks if isinstance(chunk, OpusPages)]
    # The header pages never come alone: the first chunk says what the audio's frames are.
    assert pages[0].data.startswith(b"OggS") and b"OpusHead" in pages[0].data
    assert pages[0].first_packet is not None and pages[0].first_packet.copyable
    whole = b"".join(p.data for p in pages)
    assert OggOpusReader().feed(whole).data == whole
    seconds = sum(p.seconds for p in pages)
    spoken = len(speech_samples(TEXT)) / 24_000
    assert spoken <= seconds <= spoken + 0.0265  # + pre-skip and the last frame's padding
    (request,) = fake.requests_to("speech")
    assert request.body["response_format"] == "opus"


async def test_a_server_refusing_opus_gets_pcm_from_then_on(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy, caplog: pytest.LogCaptureFixture
) -> None:
    fake.tts_refused_formats = {"opus"}
    synthesizer = tts(client, policy)
    with caplog.at_level(logging.WARNING, logger="bot.mistral.tts"):
        first = [chunk async for chunk in synthesizer.synthesize(TEXT, ref_audio=None, voice_id=None)]
        second = [chunk async for chunk in synthesizer.synthesize("Hi.", ref_audio=None, voice_id=None)]
    assert first and second and all(isinstance(c, PcmFrame) for c in first + second)
    spoken = sum(c.duration for c in first if isinstance(c, PcmFrame))
    assert spoken == pytest.approx(len(speech_samples(TEXT)) / 24_000)
    assert [r.body["response_format"] for r in fake.requests_to("speech")] == ["opus", "pcm", "pcm"]
    assert synthesizer.response_format == "pcm"
    assert len([r for r in caplog.records if "refused response_format=opus" in r.getMessage()]) == 1


async def test_other_refusals_are_not_taken_for_the_format(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy
) -> None:
    fake.faults.fail_next("speech", 1, status=403)
    with pytest.raises(RequestRejected):
        _ = [chunk async for chunk in tts(client, policy).synthesize(TEXT, ref_audio=None, voice_id=None)]
    assert len(fake.requests_to("speech")) == 1  # no second try as pcm


async def test_sentences_refused_together_all_fall_back(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy, caplog: pytest.LogCaptureFixture
) -> None:
    # A reply's next sentence is synthesised while the first is: both are refused as opus.
    fake.tts_refused_formats = {"opus"}
    fake.latency.tts_first_audio = 0.05
    synthesizer = tts(client, policy)

    async def speak(text: str) -> list[object]:
        return [chunk async for chunk in synthesizer.synthesize(text, ref_audio=None, voice_id=None)]

    with caplog.at_level(logging.WARNING, logger="bot.mistral.tts"):
        first, second = await asyncio.gather(speak(TEXT), speak("Hi."))
    assert first and second and all(isinstance(c, PcmFrame) for c in first + second)
    assert len([r for r in caplog.records if "refused response_format=opus" in r.getMessage()]) == 1
