from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
from mistralai.client import Mistral

from bot.mistral import RetryPolicy, ServiceUnavailable, StreamingTranscriber
from tests.fakes.mistral import FakeMistral, RealtimeSession

CHUNK = 640 * 2  # 40 ms of 16 kHz s16le
GUARD = 10  # seconds; only stops a broken test from hanging, never asserted on


def speech(chunks: int) -> list[bytes]:
    rng = np.random.default_rng(7)
    return [rng.integers(-3000, 3000, CHUNK // 2, dtype="<i2").tobytes() for _ in range(chunks)]


def transcriber(client: Mistral, policy: RetryPolicy, **kwargs: float) -> StreamingTranscriber:
    return StreamingTranscriber(client, realtime_model="voxtral-mini-transcribe-realtime-2602",
                                batch_model="voxtral-mini-latest", retry=policy, **kwargs)


async def from_list(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def script_words(fake: FakeMistral) -> None:
    fake.transcribe = lambda audio: f"I said {len(audio) // CHUNK} chunks" if audio else ""


async def test_audio_is_streamed_while_the_user_is_still_talking(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy
) -> None:
    script_words(fake)
    chunks = speech(3)

    async def talking() -> AsyncIterator[bytes]:
        # The next chunk is only "spoken" once the server has the previous one: a transcriber
        # that buffered until end-of-utterance would deadlock here (and hit GUARD).
        session: RealtimeSession | None = None
        for index, chunk in enumerate(chunks):
            yield chunk
            session = session or await fake.wait_for_realtime_session()
            await asyncio.wait_for(session.wait_for_appends(index + 1), GUARD)

    partials: list[str] = []
    transcript = await transcriber(client, policy).transcribe(talking(), on_partial=partials.append)
    assert transcript.text == "I said 3 chunks"
    assert transcript.source == "realtime" and transcript.language == "en"
    assert transcript.audio_seconds == pytest.approx(0.12)
    assert partials == ["I", "I said", "I said 3", "I said 3 chunks"]
    assert transcript.partial_updates == 4
    session = fake.realtime_sessions[0]
    assert bytes(session.audio) == b"".join(chunks)
    types = session.message_types
    assert types[0] == "session.update" and types[-2:] == ["input_audio.flush", "input_audio.end"]
    assert types.count("input_audio.append") == 3
    assert session.messages[0]["session"]["audio_format"] == {"encoding": "pcm_s16le", "sample_rate": 16000}
    assert fake.requests_to("transcriptions") == []


async def test_async_partial_callback_and_constructor_default(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy
) -> None:
    script_words(fake)
    seen: list[str] = []

    async def on_partial(text: str) -> None:
        seen.append(text)

    stt = StreamingTranscriber(client, realtime_model="rt", batch_model="b", retry=policy, on_partial=on_partial)
    await stt.transcribe(from_list(speech(2)))
    assert seen[-1] == "I said 2 chunks"


@pytest.mark.parametrize("fault", ["closed", "error_event", "refused", "stalled_handshake", "no_done"])
async def test_realtime_failure_falls_back_to_batch(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy, fault: str
) -> None:
    script_words(fake)
    if fault == "closed":
        fake.faults.close_realtime_next(after_appends=1)
    elif fault == "error_event":
        fake.faults.error_realtime_next(after_appends=1, code=500)
    elif fault == "refused":
        fake.faults.fail_next("realtime", status=503)
    elif fault == "stalled_handshake":
        fake.faults.stall_next("realtime")
    else:
        fake.latency.stt_final = 60  # transcription.done never comes in time
        fake.latency.stt_batch = 0
    heard: list[bytes] = []
    script = fake.transcribe
    fake.transcribe = lambda audio: heard.append(audio) or script(audio)
    chunks = speech(5)

    transcript = await transcriber(client, policy, connect_timeout=0.3, final_timeout=0.3).transcribe(
        from_list(chunks)
    )
    assert transcript.text == "I said 5 chunks"
    assert transcript.source == "batch" and transcript.language == "en"
    assert transcript.audio_seconds == pytest.approx(0.2)
    (batch,) = fake.requests_to("transcriptions")
    assert batch.body["file"]["fileName"] == "utterance.wav"
    assert heard[-1] == b"".join(chunks)  # the whole utterance, WAV-decoded by the fake


async def test_batch_fallback_failing_too_raises(fake: FakeMistral, client: Mistral, policy: RetryPolicy) -> None:
    fake.faults.fail_next("realtime", status=503)
    fake.faults.fail_next("transcriptions", 10, status=503)
    with pytest.raises(ServiceUnavailable):
        await transcriber(client, policy).transcribe(from_list(speech(2)))
    assert len(fake.requests_to("transcriptions")) == policy.max_attempts


async def test_audio_source_error_propagates(fake: FakeMistral, client: Mistral, policy: RetryPolicy) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield speech(1)[0]
        raise ConnectionResetError("voice receive died")

    with pytest.raises(ConnectionResetError):
        await transcriber(client, policy).transcribe(broken())


async def test_cancelling_transcribe_cancels_everything(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy
) -> None:
    forever = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        yield speech(1)[0]
        await forever.wait()
        yield b""

    task = asyncio.create_task(transcriber(client, policy).transcribe(endless()))
    session = await asyncio.wait_for(fake.wait_for_realtime_session(), GUARD)
    await asyncio.wait_for(session.wait_for_appends(1), GUARD)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(session.closed.wait(), GUARD)
    assert fake.requests_to("transcriptions") == []
