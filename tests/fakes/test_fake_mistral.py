"""The fake Mistral API, exercised through the real ``mistralai`` SDK."""

from __future__ import annotations

import base64
import io
import json
import wave
from collections.abc import AsyncIterator

import aiohttp
import httpx2
import numpy as np
import pytest
from mistralai.client import Mistral
from mistralai.client import errors as sdk_errors
from mistralai.client.models import (
    AudioFormat,
    File,
    RealtimeTranscriptionError,
    TranscriptionStreamDone,
    TranscriptionStreamTextDelta,
)
from mistralai.extra.exceptions import RealtimeTranscriptionException
from websockets.exceptions import ConnectionClosedError

from bot.mistral.redaction import install_log_redaction
from tests.fakes.mistral import FakeMistral, speech_samples, wav_bytes
from tests.fakes.mistral.fixtures import RecordingSleep
from tests.fakes.tls import TestCertificates


@pytest.fixture(autouse=True)
def _redacted_websocket_headers() -> None:
    """These tests drive the SDK's realtime client directly, whose websockets library logs the
    handshake's Authorization header at DEBUG; the bot installs this redaction before any socket
    (bot.__main__, StreamingTranscriber), so the suite-wide secrets check holds these tests to it too."""
    install_log_redaction()

REALTIME_MODEL = "voxtral-mini-transcribe-realtime-2602"
PCM_FORMAT = AudioFormat(encoding="pcm_s16le", sample_rate=16000)


@pytest.fixture
async def fake(trusted_certificates: TestCertificates) -> AsyncIterator[FakeMistral]:
    async with FakeMistral(trusted_certificates) as server:
        yield server


@pytest.fixture
def client(fake: FakeMistral) -> Mistral:
    return Mistral(api_key=fake.api_key, server_url=fake.url)


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


# -- chat ----------------------------------------------------------------------------------------


async def test_chat_stream_yields_token_chunks_and_usage_in_last_chunk(
    fake: FakeMistral, client: Mistral
) -> None:
    fake.reply = lambda messages: f"Hi {messages[-1]['content']}, how are you?"
    stream = await client.chat.stream_async(
        model="mistral-small-latest", messages=[{"role": "user", "content": "Ada"}], max_tokens=50
    )
    events = [event async for event in stream]
    texts = [event.data.choices[0].delta.content for event in events]
    assert "".join(t for t in texts if isinstance(t, str)) == "Hi Ada, how are you?"
    assert len([t for t in texts if t]) == 5
    assert all(event.data.usage is None for event in events[:-1])
    last = events[-1].data
    assert last.usage is not None and last.usage.completion_tokens == 5 and last.usage.prompt_tokens == 2
    assert last.choices[0].finish_reason == "stop"
    (recorded,) = fake.requests_to("chat")
    assert recorded.body["messages"] == [{"role": "user", "content": "Ada"}]
    assert recorded.body["stream"] is True and recorded.status == 200


async def test_chat_max_tokens_truncates_with_length_reason(fake: FakeMistral, client: Mistral) -> None:
    fake.reply = lambda messages: "one two three four five"
    stream = await client.chat.stream_async(
        model="m", messages=[{"role": "user", "content": "x"}], max_tokens=2
    )
    events = [event async for event in stream]
    assert "".join(e.data.choices[0].delta.content or "" for e in events) == "one two"  # type: ignore[operator]
    assert events[-1].data.choices[0].finish_reason == "length"


async def test_chat_json_completion(client: Mistral) -> None:
    response = await client.chat.complete_async(model="m", messages=[{"role": "user", "content": "hello"}])
    assert response.choices[0].message is not None
    assert response.choices[0].message.content == "You said: hello"
    assert response.usage.completion_tokens == 3


async def test_chat_rejects_invalid_body_with_422(fake: FakeMistral) -> None:
    connector = aiohttp.TCPConnector(ssl=fake.certificates.client_context())
    async with aiohttp.ClientSession(connector=connector) as session:
        response = await session.post(
            f"{fake.url}/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "robot", "content": "x"}], "stream": True},
            headers={"Authorization": f"Bearer {fake.api_key}"},
        )
        body = await response.json()
    assert response.status == 422
    assert body["detail"][0]["loc"][:2] == ["body", "messages"]


async def test_wrong_api_key_gets_401(fake: FakeMistral) -> None:
    client = Mistral(api_key="not-the-key", server_url=fake.url)
    with pytest.raises(sdk_errors.SDKError) as caught:
        await client.chat.complete_async(model="m", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 401
    assert fake.requests[0].authorized is False


async def test_chat_latency_uses_injected_sleep(trusted_certificates: TestCertificates) -> None:
    sleep = RecordingSleep()
    async with FakeMistral(trusted_certificates, sleep=sleep) as fake:
        fake.latency.chat_first_token = 0.4
        fake.latency.chat_tokens_per_s = 20
        fake.reply = lambda messages: "a b c"
        client = Mistral(api_key=fake.api_key, server_url=fake.url)
        stream = await client.chat.stream_async(model="m", messages=[{"role": "user", "content": "x"}])
        _ = [event async for event in stream]
    assert sleep.calls == [0.4, 0.05, 0.05]


# -- speech --------------------------------------------------------------------------------------


async def test_speech_stream_pcm_is_float32_with_length_proportional_to_text(
    fake: FakeMistral, client: Mistral
) -> None:
    text = "Hello there, general Kenobi."
    stream = await client.audio.speech.complete_async(input=text, model="voxtral-mini-tts-2603",
                                                      response_format="pcm", stream=True)
    events = [event async for event in stream]
    assert [e.event for e in events[-1:]] == ["speech.audio.done"]
    deltas = [base64.b64decode(e.data.audio_data) for e in events[:-1]]  # type: ignore[union-attr]
    assert all(len(d) == fake.tts_chunk_bytes for d in deltas[:-1])
    assert fake.tts_chunk_bytes % 4 != 0  # the fake splits samples across chunks on purpose
    samples = np.frombuffer(b"".join(deltas), dtype="<f4")
    np.testing.assert_array_equal(samples, speech_samples(text))
    assert len(samples) == round(len(text) * 0.065 * 24000)
    assert events[-1].data.usage.prompt_tokens == len(text)  # type: ignore[union-attr]


async def test_speech_stream_at_real_time_with_jitter_keeps_each_chunk_near_its_schedule(
    fake: FakeMistral, client: Mistral
) -> None:
    sleep = RecordingSleep()
    fake.sleep = sleep  # injected: the fake reports each chunk's delay instead of waiting it
    fake.latency.tts_first_audio = 0.3
    fake.latency.tts_chunk_interval = 0.0625
    fake.latency.tts_jitter = 0.04
    stream = await client.audio.speech.complete_async(input="A sentence long enough for many chunks.",
                                                      model="voxtral-mini-tts-2603", response_format="pcm",
                                                      stream=True)
    events = [event async for event in stream]
    assert len(events) > 10
    first, steps = sleep.calls[0], sleep.calls[1:]
    # The first chunk keeps the first-audio latency, after the (~200-byte, ~0.1 ms) upload.
    assert first == pytest.approx(0.3, abs=0.001)
    assert all(0.0625 - 0.04 <= step <= 0.0625 + 0.04 for step in steps), steps
    assert max(steps) - min(steps) > 0.04  # it does jitter


@pytest.mark.parametrize(("response_format", "magic"), [("wav", b"RIFF"), ("mp3", b"ID3"), ("flac", b"fLaC"),
                                                         ("opus", b"OggS")])
async def test_speech_json_formats(client: Mistral, response_format: str, magic: bytes) -> None:
    response = await client.audio.speech.complete_async(input="hi", response_format=response_format)  # type: ignore[arg-type]
    audio = base64.b64decode(response.audio_data)
    assert audio.startswith(magic)
    if response_format == "wav":
        with wave.open(io.BytesIO(audio)) as reader:
            assert (reader.getframerate(), reader.getnchannels(), reader.getsampwidth()) == (24000, 1, 2)


async def test_speech_records_ref_audio_and_rejects_it_with_voice_id(
    fake: FakeMistral, client: Mistral
) -> None:
    clip = wav_bytes(b"\x00\x01" * 100, 16000)
    await client.audio.speech.complete_async(input="hi", ref_audio=base64.b64encode(clip).decode())
    assert fake.requests_to("speech")[0].body["ref_audio_bytes"] == clip
    with pytest.raises(sdk_errors.HTTPValidationError):
        await client.audio.speech.complete_async(input="hi", ref_audio="AAAA", voice_id="preset")
    with pytest.raises(sdk_errors.HTTPValidationError):
        await client.audio.speech.complete_async(input="hi", ref_audio="not base64!")


# -- batch transcription -------------------------------------------------------------------------


async def test_batch_transcription_uses_scripted_transcriber(fake: FakeMistral, client: Mistral) -> None:
    pcm = np.arange(16000, dtype="<i2").tobytes()
    heard: list[bytes] = []
    fake.transcribe = lambda audio: heard.append(audio) or "scripted words"
    response = await client.audio.transcriptions.complete_async(
        model="voxtral-mini-latest",
        file=File(file_name="u.wav", content=wav_bytes(pcm, 16000), content_type="audio/wav"),
    )
    assert response.text == "scripted words" and response.language == "en"
    assert heard == [pcm]
    assert response.usage.prompt_audio_seconds == 1
    assert fake.requests_to("transcriptions")[0].body["model"] == "voxtral-mini-latest"


# -- realtime transcription ----------------------------------------------------------------------


async def test_realtime_session_streams_deltas_and_done(fake: FakeMistral, client: Mistral) -> None:
    fake.transcribe = lambda audio: f"{len(audio)} bytes heard"
    events = [
        event async for event in client.audio.realtime.transcribe_stream(
            chunks(b"\x01\x00" * 800, b"\x02\x00" * 800), model=REALTIME_MODEL, audio_format=PCM_FORMAT
        )
    ]
    deltas = [e.text for e in events if isinstance(e, TranscriptionStreamTextDelta)]
    assert "".join(deltas) == "3200 bytes heard" and len(deltas) == 3
    done = events[-1]
    assert isinstance(done, TranscriptionStreamDone) and done.text == "3200 bytes heard"
    session = fake.realtime_sessions[0]
    assert session.message_types == ["session.update", "input_audio.append", "input_audio.append",
                                     "input_audio.flush", "input_audio.end"]
    assert bytes(session.audio) == b"\x01\x00" * 800 + b"\x02\x00" * 800
    assert session.request.query["model"] == REALTIME_MODEL
    assert [event["type"] for event in session.sent[:2]] == ["session.created", "session.updated"]


async def test_realtime_rejects_unsupported_sample_rate(fake: FakeMistral, client: Mistral) -> None:
    odd_rate = AudioFormat(encoding="pcm_s16le", sample_rate=12345)
    connection = await client.audio.realtime.connect(REALTIME_MODEL, audio_format=odd_rate)
    async with connection:
        async for event in connection:
            if isinstance(event, RealtimeTranscriptionError):
                assert "sample_rate" in str(event.error.message)
                break
    assert fake.realtime_sessions[0].sent[-1]["type"] == "error"


async def test_realtime_wrong_key_fails_to_connect(fake: FakeMistral) -> None:
    client = Mistral(api_key="wrong", server_url=fake.url)
    with pytest.raises(RealtimeTranscriptionException):
        await client.audio.realtime.connect(REALTIME_MODEL)
    assert fake.requests_to("realtime")[0].status == 401


# -- faults --------------------------------------------------------------------------------------


async def test_fail_next_answers_503_then_recovers(fake: FakeMistral, client: Mistral) -> None:
    fake.faults.fail_next("chat", 2)
    for _ in range(2):
        with pytest.raises(sdk_errors.SDKError) as caught:
            await client.chat.complete_async(model="m", messages=[{"role": "user", "content": "x"}])
        assert caught.value.status_code == 503
    response = await client.chat.complete_async(model="m", messages=[{"role": "user", "content": "x"}])
    assert response.choices[0].message is not None
    assert [r.status for r in fake.requests_to("chat")] == [503, 503, 200]


async def test_rate_limit_carries_retry_after(fake: FakeMistral, client: Mistral) -> None:
    fake.faults.fail_next("speech", status=429, retry_after=7)
    with pytest.raises(sdk_errors.SDKError) as caught:
        await client.audio.speech.complete_async(input="hi", response_format="pcm", stream=True)
    assert caught.value.status_code == 429
    assert caught.value.headers["retry-after"] == "7"


async def test_stall_never_answers(fake: FakeMistral, client: Mistral) -> None:
    fake.faults.stall_next("transcriptions")
    with pytest.raises(httpx2.TimeoutException):
        await client.audio.transcriptions.complete_async(
            model="m", file=File(file_name="a.wav", content=wav_bytes(b"\0\0", 16000)), timeout_ms=200
        )
    assert fake.requests_to("transcriptions")[0].status is None


async def test_break_stream_cuts_sse_mid_body(fake: FakeMistral, client: Mistral) -> None:
    fake.reply = lambda messages: "a b c d e"
    fake.faults.break_stream_next("chat", after_events=3)
    stream = await client.chat.stream_async(model="m", messages=[{"role": "user", "content": "x"}])
    received = []
    with pytest.raises(httpx2.TransportError):
        async for event in stream:
            received.append(event)
    assert len(received) == 3


async def test_realtime_closes_mid_stream(fake: FakeMistral, client: Mistral) -> None:
    fake.faults.close_realtime_next(after_appends=1)
    connection = await client.audio.realtime.connect(REALTIME_MODEL, audio_format=PCM_FORMAT)
    await connection.send_audio(b"\0\0" * 160)
    session = await fake.wait_for_realtime_session()
    await session.closed.wait()
    with pytest.raises(ConnectionClosedError):
        async for _event in connection:
            pass
    assert session.appends == 1


async def test_realtime_error_event(fake: FakeMistral, client: Mistral) -> None:
    fake.faults.error_realtime_next(after_appends=2, code=503, message="overloaded")
    events = [
        event async for event in client.audio.realtime.transcribe_stream(
            chunks(b"\0\0" * 10, b"\0\0" * 10, b"\0\0" * 10), model=REALTIME_MODEL, audio_format=PCM_FORMAT
        )
    ]
    error = events[-1]
    assert isinstance(error, RealtimeTranscriptionError)
    assert error.error.code == 503 and error.error.message == "overloaded"


async def test_realtime_refused_and_stalled_handshakes(fake: FakeMistral, client: Mistral) -> None:
    fake.faults.fail_next("realtime", status=503)
    with pytest.raises(RealtimeTranscriptionException):
        await client.audio.realtime.connect(REALTIME_MODEL)
    fake.faults.stall_next("realtime")
    with pytest.raises(RealtimeTranscriptionException, match="Timeout waiting for session creation"):
        await client.audio.realtime.connect(REALTIME_MODEL, timeout_ms=200)
    assert len(fake.realtime_sessions) == 0 or fake.realtime_sessions[-1].sent == []


async def test_recorded_bodies_are_json_serialisable(fake: FakeMistral, client: Mistral) -> None:
    await client.chat.complete_async(model="m", messages=[{"role": "user", "content": "x"}])
    assert json.loads(json.dumps(fake.requests[0].body))["model"] == "m"
