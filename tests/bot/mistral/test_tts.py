from __future__ import annotations

import base64

import numpy as np
import pytest
from mistralai.client import Mistral

from bot.audio.frames import PcmFrame
from bot.mistral import RetryPolicy, ServiceUnavailable, SpeechSynthesizer
from bot.mistral.pcm import Float32Chunks
from tests.bot.mistral.conftest import VirtualClock
from tests.fakes.mistral import FakeMistral, speech_samples, wav_bytes

TEXT = "The quick brown fox jumps over the lazy dog."


def tts(client: Mistral, policy: RetryPolicy) -> SpeechSynthesizer:
    return SpeechSynthesizer(client, model="voxtral-mini-tts-2603", retry=policy, response_format="pcm")


def expected_float32(text: str) -> np.ndarray:
    return speech_samples(text).astype("<f4")


async def test_streams_float32_as_sent_in_whole_samples(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy
) -> None:
    assert fake.tts_chunk_bytes % 4 != 0  # chunks split float32 samples: the carry must work
    synthesizer = tts(client, policy)
    chunks = [chunk async for chunk in synthesizer.synthesize(TEXT, ref_audio=None, voice_id="en_paul_neutral")]
    assert len(chunks) > 3
    assert all((chunk.sample_rate, chunk.channels, chunk.sample_format) == (24000, 1, "f32le") for chunk in chunks)
    np.testing.assert_array_equal(np.frombuffer(b"".join(c.pcm for c in chunks), dtype="<f4"), expected_float32(TEXT))
    assert synthesizer.sample_rate == 24000 and synthesizer.channels == 1
    (request,) = fake.requests_to("speech")
    assert request.body["response_format"] == "pcm" and request.body["stream"] is True
    assert request.body["voice_id"] == "en_paul_neutral" and "ref_audio" not in request.body


async def test_ref_audio_is_sent_base64(fake: FakeMistral, client: Mistral, policy: RetryPolicy) -> None:
    clip = wav_bytes(np.arange(2400, dtype="<i2").tobytes(), 24000)
    _ = [chunk async for chunk in tts(client, policy).synthesize("Hi.", ref_audio=clip, voice_id=None)]
    (request,) = fake.requests_to("speech")
    assert base64.b64decode(request.body["ref_audio"]) == clip
    assert "voice_id" not in request.body


def test_ref_audio_and_voice_id_are_exclusive(client: Mistral, policy: RetryPolicy) -> None:
    with pytest.raises(ValueError, match="mutually exclusive"):
        tts(client, policy).synthesize("Hi.", ref_audio=b"RIFF", voice_id="en_paul_neutral")


async def test_503_then_success(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy, clock: VirtualClock
) -> None:
    fake.faults.fail_next("speech", 1, status=503)
    chunks = [chunk async for chunk in tts(client, policy).synthesize(TEXT, ref_audio=None, voice_id=None)]
    np.testing.assert_array_equal(np.frombuffer(b"".join(c.pcm for c in chunks), dtype="<f4"), expected_float32(TEXT))
    assert clock.sleeps == [0.25]


async def test_cut_after_first_audio_raises(fake: FakeMistral, client: Mistral, policy: RetryPolicy) -> None:
    fake.faults.break_stream_next("speech", after_events=2)
    received: list[PcmFrame] = []
    with pytest.raises(ServiceUnavailable):
        async for chunk in tts(client, policy).synthesize(TEXT, ref_audio=None, voice_id=None):
            received.append(chunk)
    assert len(received) == 2
    assert len(fake.requests_to("speech")) == 1


def test_float32_chunks_are_recut_on_sample_boundaries_and_left_as_sent() -> None:
    values = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -3.0, 1e-6], dtype="<f4")
    raw = values.tobytes()
    chunks = Float32Chunks()
    pieces = [chunks.whole_samples(raw[i:i + 3]) for i in range(0, len(raw), 3)]
    assert chunks.pending == 0
    assert all(len(piece) % 4 == 0 for piece in pieces)
    assert b"".join(pieces) == raw  # not clipped here: the player clips, on its pipe thread
    half = Float32Chunks()
    assert half.whole_samples(raw[:6]) == raw[:4] and half.pending == 2


async def test_without_a_voice_the_reply_language_picks_the_preset(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy
) -> None:
    synthesizer = SpeechSynthesizer(client, model="voxtral-mini-tts-3-0", retry=policy, default_voice="voice_478",
                                    voices_by_language={"fr": "voice_592", "EN": "voice_485"})
    for language, voice in (("fr", "voice_592"), ("fr-CA", "voice_592"), ("en", "voice_485"), ("de", "voice_478"),
                            (None, "voice_478")):
        _ = [chunk async for chunk in synthesizer.synthesize("Bonjour.", ref_audio=None, voice_id=None,
                                                             language=language)]
        assert fake.requests_to("speech")[-1].body["voice_id"] == voice, language
    # A clip (registered or sent) is never replaced by a preset: the voice speaks the text's language.
    _ = [chunk async for chunk in synthesizer.synthesize("Bonjour.", ref_audio=wav_bytes(b"\0\0" * 2400, 24000),
                                                         voice_id=None, language="fr")]
    body = fake.requests_to("speech")[-1].body
    assert "voice_id" not in body and "language" not in body
    assert body["model"] == "voxtral-mini-tts-3-0"
