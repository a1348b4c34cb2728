"""The fake's Voxtral 3 realtime semantics, driven through the real SDK's realtime client (so every
event it sends is validated by the SDK's own models) and, for the turn state machine, directly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from mistralai.client import Mistral
from mistralai.client.models import (
    AudioFormat,
    RealtimeTranscriptionError,
    RealtimeTranscriptionSessionUpdated,
    TranscriptionStreamDone,
    TranscriptionStreamLanguage,
    TranscriptionStreamTextDelta,
    TurnDetectionEagerEndEvent,
    TurnDetectionEndEvent,
    TurnDetectionResumeEvent,
    TurnDetectionStartEvent,
)
from mistralai.extra.realtime import RealtimeConnection

from bot.mistral.redaction import install_log_redaction
from tests.fakes.mistral import FakeMistral, TurnModel, looks_complete
from tests.fakes.mistral.turns import TurnSettings, TurnTracker, validate_turn_detection
from tests.fakes.tls import TestCertificates

V3 = "voxtral-mini-transcribe-realtime-3-0"
OLD = "voxtral-mini-transcribe-realtime-2602"
PCM = AudioFormat(encoding="pcm_s16le", sample_rate=16000)
GUARD = 10  # seconds; only stops a broken test from hanging, never asserted on
_TURN_TYPES = (TurnDetectionStartEvent, TurnDetectionEagerEndEvent, TurnDetectionResumeEvent, TurnDetectionEndEvent)


@pytest.fixture(autouse=True)
def _redacted_websocket_headers() -> None:
    """The SDK's websockets client logs the handshake's Authorization header at DEBUG; the bot
    installs this redaction before any socket, so the suite-wide secrets check holds us to it."""
    install_log_redaction()


@pytest.fixture
async def fake(trusted_certificates: TestCertificates) -> AsyncIterator[FakeMistral]:
    async with FakeMistral(trusted_certificates) as server:
        yield server


@pytest.fixture
def client(fake: FakeMistral) -> Mistral:
    return Mistral(api_key=fake.api_key, server_url=fake.url)


def tone(ms: int, amplitude: float = 6000) -> bytes:
    t = np.arange(16 * ms) / 16_000
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes()


def zeros(ms: int) -> bytes:
    return bytes(32 * ms)


class Events:
    """One event iterator per connection: the SDK closes the socket when its iterator is dropped."""

    def __init__(self, connection: RealtimeConnection) -> None:
        self._events = aiter(connection)

    async def next(self, kinds: tuple[type[Any], ...]) -> Any:
        """The next event of one of ``kinds``, skipping the others."""
        async with asyncio.timeout(GUARD):
            while True:
                event = await anext(self._events)
                if isinstance(event, kinds):
                    return event

    async def turns(self, until: type[Any] = TurnDetectionEndEvent) -> list[Any]:
        events: list[Any] = []
        while not events or not isinstance(events[-1], until):
            events.append(await self.next(_TURN_TYPES))
        return events


async def stream(connection: RealtimeConnection, audio: bytes, chunk_ms: int = 40) -> None:
    step = 32 * chunk_ms
    for start in range(0, len(audio), step):
        await connection.send_audio(audio[start:start + step])


# -- session settings ------------------------------------------------------------------------------


async def test_settings_lock_at_the_first_audio_chunk_on_voxtral_3(fake: FakeMistral, client: Mistral) -> None:
    connection = await client.audio.realtime.connect(V3, audio_format=PCM, language="en")
    events = Events(connection)
    assert isinstance(await events.next((RealtimeTranscriptionSessionUpdated,)),
                      RealtimeTranscriptionSessionUpdated)
    await connection.update_session(context_bias=["Voxcord"])  # still before audio: accepted
    updated = await events.next((RealtimeTranscriptionSessionUpdated, RealtimeTranscriptionError))
    assert isinstance(updated, RealtimeTranscriptionSessionUpdated) and updated.session.context_bias == ["Voxcord"]
    await connection.send_audio(zeros(40))
    await connection.update_session(language="fr")
    error = await events.next((RealtimeTranscriptionSessionUpdated, RealtimeTranscriptionError))
    assert isinstance(error, RealtimeTranscriptionError)
    assert error.error.message == "Session fields cannot be changed after audio has started."
    assert fake.realtime_sessions[0].settings["language"] == "en"
    await connection.close()


async def test_an_older_model_only_locks_the_audio_format(fake: FakeMistral, client: Mistral) -> None:
    connection = await client.audio.realtime.connect(OLD, audio_format=PCM)
    events = Events(connection)
    await connection.send_audio(zeros(40))
    await connection.update_session(language="fr")
    event = await events.next((RealtimeTranscriptionError,
                                          RealtimeTranscriptionSessionUpdated))
    while isinstance(event, RealtimeTranscriptionSessionUpdated) and event.session.language != "fr":
        event = await events.next((RealtimeTranscriptionError, RealtimeTranscriptionSessionUpdated))
    assert isinstance(event, RealtimeTranscriptionSessionUpdated) and event.session.language == "fr"
    await connection.close()


@pytest.mark.parametrize(("model", "refused"), [
    (V3, False), ("voxtral-mini-transcribe-realtime-3", False), ("voxtral-mini-transcribe-realtime-latest", False),
    (OLD, True), ("some-self-hosted-realtime", True),
])
async def test_turn_detection_only_on_voxtral_3(fake: FakeMistral, client: Mistral, model: str, refused: bool) -> None:
    connection = await client.audio.realtime.connect(model, audio_format=PCM, turn_detection={})
    events = Events(connection)
    answer = await events.next((RealtimeTranscriptionSessionUpdated, RealtimeTranscriptionError))
    if refused:
        assert isinstance(answer, RealtimeTranscriptionError)
        assert "turn_detection is not supported" in str(answer.error.message)
        assert "turn_detection" not in fake.realtime_sessions[0].settings
    else:
        assert isinstance(answer, RealtimeTranscriptionSessionUpdated)
        assert answer.session.turn_detection is not None and answer.session.turn_detection.min_silence_ms == 500
    await connection.close()


@pytest.mark.parametrize(("fields", "message"), [
    ({"turn_detection": {}, "diarize": True}, "Diarization is not compatible with turn detection."),
    ({"turn_detection": {"eager_end_threshold": 0.3, "end_threshold": 0.4}}, "thresholds must satisfy"),
    ({"turn_detection": {"min_silence_ms": 800, "end_timeout_ms": 500}}, "at least min_silence_ms"),
    ({"target_streaming_delay_ms": 1500}, "target_streaming_delay_ms"),
    ({"language": "french"}, "ISO-639-1"),
])
async def test_impossible_settings_are_refused_whole(
    fake: FakeMistral, client: Mistral, fields: dict[str, Any], message: str
) -> None:
    connection = await client.audio.realtime.connect(V3, audio_format=PCM, context_bias=["kept"])
    events = Events(connection)
    await events.next((RealtimeTranscriptionSessionUpdated,))
    await connection.update_session(context_bias=["dropped"], **fields)
    error = await events.next((RealtimeTranscriptionSessionUpdated, RealtimeTranscriptionError))
    assert isinstance(error, RealtimeTranscriptionError) and message in str(error.error.message)
    assert fake.realtime_sessions[0].settings["context_bias"] == ["kept"]
    await connection.close()


# -- turn events -----------------------------------------------------------------------------------


async def test_turn_events_follow_the_audio_with_realistic_timing(fake: FakeMistral, client: Mistral) -> None:
    connection = await client.audio.realtime.connect(V3, audio_format=PCM, turn_detection={})
    events = Events(connection)
    await stream(connection, tone(800) + zeros(1000))
    events = await events.turns()
    assert [type(event) for event in events] == [TurnDetectionStartEvent, TurnDetectionEagerEndEvent,
                                                 TurnDetectionEndEvent]
    start, eager, end = events
    assert start.time_s == pytest.approx(0.0)
    assert 0.8 < eager.time_s < 0.8 + 0.5  # the eager end comes before min_silence_ms
    assert end.time_s >= 0.8 + 0.5 and end.end_reason == "threshold"
    await connection.close()


async def test_a_mid_thought_pause_resumes_instead_of_ending(fake: FakeMistral, client: Mistral) -> None:
    connection = await client.audio.realtime.connect(V3, audio_format=PCM, turn_detection={"min_silence_ms": 600})
    events = Events(connection)
    await stream(connection, tone(640) + zeros(400) + tone(640) + zeros(800))
    events = await events.turns()
    assert [event.type for event in events] == ["turn.start", "turn.eager_end", "turn.resume", "turn.eager_end",
                                                "turn.end"]
    assert events[2].time_s == pytest.approx(1.04)
    assert events[4].time_s >= 1.68 + 0.6
    await connection.close()


async def test_silence_is_counted_in_audio_not_wall_time(fake: FakeMistral, client: Mistral) -> None:
    connection = await client.audio.realtime.connect(V3, audio_format=PCM, turn_detection={})
    events = Events(connection)
    await stream(connection, tone(800))
    await events.next((TurnDetectionStartEvent,))
    await asyncio.sleep(1.0)  # the client sends nothing: for the server, no time passes
    assert [event["type"] for event in fake.realtime_sessions[0].sent
            if event["type"].startswith("turn.")] == ["turn.start"]
    await stream(connection, zeros(600))
    end = (await events.turns())[-1]
    assert end.time_s == pytest.approx(0.8 + 0.56)  # 7 frames of 80 ms: the first past 500 ms
    await connection.close()


async def test_an_unfinished_thought_waits_for_the_timeout(fake: FakeMistral, client: Mistral) -> None:
    fake.transcribe = lambda audio: "what is the capital of" if audio else ""
    connection = await client.audio.realtime.connect(
        V3, audio_format=PCM, turn_detection={"min_silence_ms": 500, "end_timeout_ms": 1500})
    events = Events(connection)
    await stream(connection, tone(400) + zeros(2000))
    end = (await events.turns())[-1]
    assert end.end_reason == "timeout" and end.time_s >= 0.4 + 1.5
    await connection.close()


async def test_quiet_noise_is_silence_and_a_click_opens_no_turn(fake: FakeMistral, client: Mistral) -> None:
    rng = np.random.default_rng(3)
    hiss = rng.integers(-60, 60, 16 * 960, dtype="<i2").tobytes()  # about -60 dBFS, 12 frames
    connection = await client.audio.realtime.connect(V3, audio_format=PCM, turn_detection={})
    events = Events(connection)
    await stream(connection, hiss + tone(80) + hiss)
    await connection.flush_audio()
    await connection.end_audio()
    await events.next((TranscriptionStreamDone,))
    assert not [event for event in fake.realtime_sessions[0].sent if event["type"].startswith("turn.")]
    await connection.close()


# -- streamed text -----------------------------------------------------------------------------------


async def test_text_streams_while_audio_flows_at_the_streaming_delay(fake: FakeMistral, client: Mistral) -> None:
    fake.transcribe = lambda audio: " ".join(["word"] * (len(audio) // 16_000))  # one word per 0.5 s
    connection = await client.audio.realtime.connect(V3, audio_format=PCM, target_streaming_delay_ms=240,
                                                     language="fr")
    events = Events(connection)
    await stream(connection, tone(2000))
    language = await events.next((TranscriptionStreamLanguage,))
    delta = await events.next((TranscriptionStreamTextDelta,))
    assert language.audio_language == "fr" and delta.text == "word"
    assert "input_audio.flush" not in fake.realtime_sessions[0].message_types  # streamed, not flushed
    await connection.flush_audio()
    await connection.end_audio()
    done = await events.next((TranscriptionStreamDone,))
    assert done.text == "word word word word" and done.language == "fr"
    await connection.close()


# -- the state machine, pure -------------------------------------------------------------------------


def feed(tracker: TurnTracker, pattern: str, text: str = "done.") -> list[tuple[str, float]]:
    """``pattern``: one character per 80 ms frame, ``s`` speech, ``.`` silence."""
    events = []
    for index, frame in enumerate(pattern, start=1):
        for event in tracker.feed(index * 80, frame == "s", lambda: text):
            events.append((event["type"], event["time_s"]))
    return events


def test_tracker_needs_two_frames_of_speech_to_start() -> None:
    tracker = TurnTracker(TurnSettings(500, 3000), TurnModel())
    assert feed(tracker, "s.s..") == []
    assert feed(TurnTracker(TurnSettings(500, 3000), TurnModel()), ".ss") == [("turn.start", 0.08)]


def test_tracker_eager_end_resume_end_timing() -> None:
    tracker = TurnTracker(TurnSettings(500, 3000), TurnModel())
    assert feed(tracker, "ssss" + "...." + "ss" + "......." + "ss") == [
        ("turn.start", 0.0), ("turn.eager_end", 0.56), ("turn.resume", 0.64), ("turn.eager_end", 1.04),
        ("turn.end", 1.36), ("turn.start", 1.36),
    ]


def test_tracker_without_a_timeout_waits_for_a_finished_thought() -> None:
    tracker = TurnTracker(TurnSettings(500, None), TurnModel())
    assert [kind for kind, _ in feed(tracker, "ss" + "." * 100, text="and the")] == ["turn.start", "turn.eager_end"]


def test_looks_complete() -> None:
    assert looks_complete("What is the capital of France?")
    assert looks_complete("")
    assert not looks_complete("What is the capital of")
    assert not looks_complete("Well, um")
    assert not looks_complete("I think that…")


def test_turn_detection_validation_follows_the_documented_constraints() -> None:
    assert validate_turn_detection({}) is None
    assert validate_turn_detection({"start_threshold": 0.6, "eager_end_threshold": 0.6, "end_threshold": 0.2}) is None
    assert validate_turn_detection({"eager_end_threshold": 0.33}) is not None  # eager must exceed end
    assert validate_turn_detection({"start_threshold": 1.5}) is not None
    assert validate_turn_detection({"min_silence_ms": 500, "end_timeout_ms": None}) is None
