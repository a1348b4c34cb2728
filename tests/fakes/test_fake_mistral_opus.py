"""The fake's Ogg Opus speech is as the real API's: mono 24 kHz, 20 ms frames unless told
otherwise, streamed by audio duration on the same real-time schedule as pcm (never faster)."""

from __future__ import annotations

import base64
import io

import av
import pytest
from mistralai.client import Mistral
from mistralai.client import errors as sdk_errors

from bot.audio.ogg_opus import OggOpusReader
from tests.fakes.mistral import FakeMistral
from tests.fakes.mistral.fixtures import RecordingSleep

TEXT = "A sentence long enough for many chunks of speech."


async def opus_deltas(client: Mistral, text: str = TEXT) -> list[bytes]:
    stream = await client.audio.speech.complete_async(input=text, model="voxtral-mini-tts-3-0",
                                                      response_format="opus", stream=True)
    events = [event async for event in stream]
    assert events[-1].event == "speech.audio.done"
    return [base64.b64decode(e.data.audio_data) for e in events[:-1]]  # type: ignore[union-attr]


async def test_opus_is_streamed_by_duration_in_whole_pages_at_real_time(
    fake_mistral: FakeMistral, mistral_client: Mistral
) -> None:
    sleep = RecordingSleep()
    fake_mistral.sleep = sleep
    fake_mistral.latency.tts_first_audio = 0.3
    fake_mistral.latency.tts_chunk_interval = 0.0625
    fake_mistral.latency.tts_jitter = 0.04
    deltas = await opus_deltas(mistral_client)
    reader = OggOpusReader()
    pages = [reader.feed(delta) for delta in deltas]
    assert all(p.data == d for p, d in zip(pages, deltas, strict=True))  # whole pages, nothing split
    seconds = [p.seconds for p in pages]
    # Each event carries ~62.5 ms (three or four 20 ms packets), like a 6001-byte pcm chunk: by
    # bytes it would be ~0.8 s an event, far faster than real time.
    assert all(0.04 <= s <= 0.1 for s in seconds[:-1]), seconds
    assert sum(seconds) / len(seconds) == pytest.approx(0.0625, abs=0.005)
    assert all(0.0625 - 0.04 <= step <= 0.0625 + 0.04 for step in sleep.calls[1:]), sleep.calls
    assert pages[0].first_packet is not None and pages[0].first_packet.copyable


async def test_opus_is_mono_24_khz_in_20_ms_frames(mistral_client: Mistral) -> None:
    ogg = b"".join(await opus_deltas(mistral_client))
    with av.open(io.BytesIO(ogg)) as container:
        stream = container.streams.audio[0]
        assert (stream.codec_context.name, stream.channels) == ("opus", 1)
    assert ogg[28:36] == b"OpusHead" and int.from_bytes(ogg[40:44], "little") == 24_000  # input rate


async def test_a_frame_duration_knob_makes_60_ms_packets(fake_mistral: FakeMistral, mistral_client: Mistral) -> None:
    fake_mistral.tts_opus_frame_ms = 60
    reader = OggOpusReader()
    first = next(p.first_packet for d in await opus_deltas(mistral_client) if (p := reader.feed(d)).first_packet)
    assert (first.seconds, first.copyable) == (pytest.approx(0.060), False)


async def test_a_server_without_opus_refuses_it_with_422(fake_mistral: FakeMistral, mistral_client: Mistral) -> None:
    fake_mistral.tts_refused_formats = {"opus"}
    with pytest.raises(sdk_errors.MistralError) as raised:
        await opus_deltas(mistral_client)
    assert raised.value.status_code == 422


async def test_encoded_speech_is_cached(fake_mistral: FakeMistral, mistral_client: Mistral) -> None:
    first = await opus_deltas(mistral_client)
    assert await opus_deltas(mistral_client) == first
    assert fake_mistral.speech_cache.hits == 1
