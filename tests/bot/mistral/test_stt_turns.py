"""Voxtral 3 sessions through the fake and the real SDK: options before audio, server turn events,
the utterance ending on ``turn.end``, and turn detection refused by the model."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from mistralai.client import Mistral

from bot.mistral import (
    RetryPolicy,
    SessionOptions,
    StreamingTranscriber,
    TurnDetectionSettings,
    TurnEvent,
)
from tests.fakes.mistral import FakeMistral

V3 = "voxtral-mini-transcribe-realtime-3-0"
OLD = "voxtral-mini-transcribe-realtime-2602"
CHUNK = 640  # 20 ms of 16 kHz s16le, what the voice receive path produces
WORDS = ["what", "is", "the", "capital", "of", "france", "please", "tell", "me", "quickly", "now"]
TURNS = SessionOptions(turn_detection=TurnDetectionSettings())
GUARD_CHUNKS = 500  # 10 s of audio: only stops a broken test from streaming silence forever


def tone(ms: int) -> list[bytes]:
    t = np.arange(16 * ms) / 16_000
    samples = (6000 * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes()
    return [samples[i:i + CHUNK] for i in range(0, len(samples), CHUNK)]


def silence(ms: int) -> list[bytes]:
    return [bytes(CHUNK)] * (ms // 20)


def script_words(fake: FakeMistral, words: list[str] = WORDS) -> None:
    """One word per 100 ms of speech heard, so the text of a prefix is a prefix of the text."""

    def transcribe(audio: bytes) -> str:
        frames = np.frombuffer(audio[:len(audio) // CHUNK * CHUNK], "<i2").reshape(-1, CHUNK // 2)
        spoken = int(np.count_nonzero(np.abs(frames).max(axis=1) > 0))
        return " ".join(words[:spoken // 5])

    fake.transcribe = transcribe


class Speaker:
    """Streams chunks at 4x real time (the fake counts audio time, not wall time), then zeros
    forever, as the conversation layer must through pauses; records how far it was read."""

    def __init__(self, chunks: list[bytes], *, then_silence: bool = True) -> None:
        self.chunks = chunks
        self.then_silence = then_silence
        self.yielded = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.yielded += 1
            yield chunk
            await asyncio.sleep(0.005)
        for _ in range(GUARD_CHUNKS if self.then_silence else 0):
            self.yielded += 1
            yield bytes(CHUNK)
            await asyncio.sleep(0.005)
        if self.then_silence:
            raise AssertionError("the server never ended the turn")

    @property
    def exhausted(self) -> bool:
        return not self.then_silence and self.yielded == len(self.chunks)


def transcriber(client: Mistral, policy: RetryPolicy, model: str = V3, **kwargs: Any) -> StreamingTranscriber:
    return StreamingTranscriber(client, realtime_model=model, batch_model="voxtral-mini-transcribe-3-0",
                                retry=policy, **kwargs)


@pytest.mark.parametrize(("model", "mode", "available"), [
    (V3, "auto", True), ("voxtral-mini-transcribe-realtime-3", "auto", True),
    ("voxtral-mini-transcribe-realtime-latest", "auto", True), (OLD, "auto", False),
    ("my-vllm-realtime", "auto", False), ("my-vllm-realtime", "on", True), (V3, "off", False),
])
def test_turn_detection_available_by_model_and_setting(
    client: Mistral, policy: RetryPolicy, model: str, mode: str, available: bool
) -> None:
    assert transcriber(client, policy, model, turn_detection=mode).turn_detection_available is available


async def test_options_go_in_the_session_update_before_the_first_audio(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy
) -> None:
    script_words(fake)
    options = SessionOptions(context_bias=("Voxcord", "Ada"), language="fr", streaming_delay_ms=240,
                             turn_detection=TurnDetectionSettings(min_silence_ms=700, end_timeout_ms=2000))
    languages: list[str] = []
    transcript = await transcriber(client, policy).transcribe(
        aiter(Speaker(tone(400), then_silence=False)), options=options, on_language=languages.append)
    session = fake.realtime_sessions[0]
    assert session.message_types[0] == "session.update" and session.message_types[1] == "input_audio.append"
    sent = session.messages[0]["session"]
    assert sent["context_bias"] == ["Voxcord", "Ada"] and sent["language"] == "fr"
    assert sent["target_streaming_delay_ms"] == 240
    assert sent["turn_detection"]["min_silence_ms"] == 700 and sent["turn_detection"]["end_timeout_ms"] == 2000
    assert session.settings["turn_detection"]["min_silence_ms"] == 700  # accepted, not refused
    assert "error" not in [event["type"] for event in session.sent]
    assert languages == ["fr"] and transcript.language == "fr"
    assert transcript.text == "what is the capital" and transcript.turn_detection
    assert transcript.end_reason == "local"  # the audio ran out before the server ended the turn


async def test_an_older_model_gets_only_what_it_supports(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy
) -> None:
    script_words(fake)
    stt = transcriber(client, policy, OLD)
    options = SessionOptions(context_bias=("Voxcord",), language="fr", turn_detection=TurnDetectionSettings())
    transcript = await stt.transcribe(aiter(Speaker(tone(400), then_silence=False)), options=options)
    sent = fake.realtime_sessions[0].messages[0]["session"]
    assert set(sent) == {"audio_format"}
    assert transcript.text == "what is the capital" and not transcript.turn_detection
    assert len(fake.realtime_sessions) == 1


async def test_turn_end_finishes_the_utterance_without_draining_the_audio(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy
) -> None:
    script_words(fake)
    speaker = Speaker(tone(1000))
    turns: list[TurnEvent] = []
    transcript = await transcriber(client, policy).transcribe(aiter(speaker), on_turn=turns.append,
                                                              options=TURNS)
    assert [turn.kind for turn in turns] == ["start", "eager_end", "end"]
    start, eager, end = turns
    assert start.time_s == pytest.approx(0.0)
    assert 1.0 < eager.time_s < end.time_s
    assert end.time_s >= 1.0 + 0.5  # no turn.end sooner than min_silence_ms (500) after speech
    assert end.end_reason == "threshold" and transcript.end_reason == "threshold"
    assert transcript.text == " ".join(WORDS[:10]) and transcript.source == "realtime"
    session = fake.realtime_sessions[0]
    assert session.message_types[-2:] == ["input_audio.flush", "input_audio.end"]
    # Billed seconds are what was sent: the speech, the silence that ended it, and the frames that
    # were in flight while turn.end travelled back.
    assert transcript.audio_seconds == pytest.approx(len(session.audio) / 32_000)
    assert transcript.audio_seconds >= end.time_s
    assert not speaker.exhausted and speaker.yielded * CHUNK == len(session.audio)


async def test_a_mid_thought_pause_is_an_eager_end_then_a_resume(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy
) -> None:
    script_words(fake)
    turns: list[TurnEvent] = []
    speech = tone(640) + silence(320) + tone(640)
    transcript = await transcriber(client, policy).transcribe(aiter(Speaker(speech)), on_turn=turns.append,
                                                              options=TURNS)
    assert [turn.kind for turn in turns] == ["start", "eager_end", "resume", "eager_end", "end"]
    assert turns[1].time_s == pytest.approx(0.64 + 0.24)
    assert turns[2].time_s == pytest.approx(0.96)
    assert turns[4].time_s >= 1.6 + 0.5 and turns[4].end_reason == "threshold"
    assert transcript.text == " ".join(WORDS)
    assert transcript.end_reason == "threshold"


async def test_an_unfinished_thought_ends_only_on_the_timeout(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy
) -> None:
    script_words(fake)  # 1 s of speech: "... the capital of" is not a finished thought
    turns: list[TurnEvent] = []
    options = SessionOptions(turn_detection=TurnDetectionSettings(min_silence_ms=500, end_timeout_ms=1200))
    transcript = await transcriber(client, policy).transcribe(aiter(Speaker(tone(500))), on_turn=turns.append,
                                                              options=options)
    assert [turn.kind for turn in turns] == ["start", "eager_end", "end"]
    assert turns[-1].end_reason == "timeout" and turns[-1].time_s >= 0.5 + 1.2
    assert transcript.text == "what is the capital of" and transcript.end_reason == "timeout"


async def test_eager_end_carries_the_text_heard_so_far(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy
) -> None:
    script_words(fake)
    fake.turns.jitter = 0.0  # the lanes' relative order is what is under test
    partials: list[str] = []
    turns: list[TurnEvent] = []
    options = SessionOptions(streaming_delay_ms=80, turn_detection=TurnDetectionSettings())
    await transcriber(client, policy).transcribe(aiter(Speaker(tone(1000))), on_turn=turns.append,
                                                 on_partial=partials.append, options=options)
    eager = next(turn for turn in turns if turn.kind == "eager_end")
    assert eager.text == " ".join(WORDS[:10])
    assert partials and partials[0] != eager.text  # text streamed while the person was talking


async def test_a_model_that_refuses_turn_detection_is_remembered_and_nothing_is_lost(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy
) -> None:
    script_words(fake)
    stt = transcriber(client, policy, OLD, turn_detection="on")
    assert stt.turn_detection_available
    chunks = tone(600)
    transcript = await stt.transcribe(aiter(Speaker(chunks, then_silence=False)), options=TURNS)
    assert not stt.turn_detection_available
    refused, retried = fake.realtime_sessions
    assert any(event["type"] == "error" and "turn_detection" in event["error"]["message"]
               for event in refused.sent)
    assert "turn_detection" not in retried.messages[0]["session"]
    assert bytes(retried.audio) == b"".join(chunks)
    assert transcript.text == "what is the capital of france" and transcript.source == "realtime"
    assert not transcript.turn_detection and fake.requests_to("transcriptions") == []
    # The next utterance does not ask again.
    await stt.transcribe(aiter(Speaker(tone(200), then_silence=False)), options=TURNS)
    assert len(fake.realtime_sessions) == 3
    assert "turn_detection" not in fake.realtime_sessions[2].messages[0]["session"]


async def test_turn_detection_off_never_asks(fake: FakeMistral, client: Mistral, policy: RetryPolicy) -> None:
    script_words(fake)
    turns: list[TurnEvent] = []
    stt = transcriber(client, policy, turn_detection="off")
    await stt.transcribe(aiter(Speaker(tone(300) + silence(800), then_silence=False)), on_turn=turns.append,
                         options=TURNS)
    assert "turn_detection" not in fake.realtime_sessions[0].messages[0]["session"]
    assert turns == []


async def test_batch_fallback_after_turn_end_keeps_the_servers_reason(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy
) -> None:
    script_words(fake)
    fake.latency.stt_final = 60  # transcription.done never comes in time
    fake.latency.stt_batch = 0
    transcript = await transcriber(client, policy, final_timeout=0.3).transcribe(
        aiter(Speaker(tone(600))), options=TURNS)
    assert transcript.source == "batch" and transcript.end_reason == "threshold"
    assert transcript.text == "what is the capital of france"
    (batch,) = fake.requests_to("transcriptions")
    assert batch.body["model"] == "voxtral-mini-transcribe-3-0"


async def test_turn_end_returns_even_when_the_audio_source_stalls(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy
) -> None:
    script_words(fake)
    fake.turns.event_delay = 0.5  # the source has stalled well before turn.end comes back
    stalled = asyncio.Event()
    released = asyncio.Event()

    async def source() -> AsyncIterator[bytes]:
        for chunk in tone(600) + silence(700):
            yield chunk
            await asyncio.sleep(0.005)
        stalled.set()
        try:
            await released.wait()  # the next packet never comes
        except asyncio.CancelledError:
            released.set()
            raise
        yield bytes(CHUNK)

    transcript = await asyncio.wait_for(
        transcriber(client, policy).transcribe(source(), options=TURNS), GUARD_CHUNKS / 50)
    assert stalled.is_set() and released.is_set()  # the pending read was cancelled, not left hanging
    assert transcript.end_reason == "threshold" and transcript.text == "what is the capital of france"
    assert transcript.audio_seconds == pytest.approx(1.3)


async def test_turn_end_stops_the_audio_even_when_the_source_swallows_the_cancel(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy
) -> None:
    # Python 3.11's asyncio.wait_for (listening's silence fill) returns the item it got instead of
    # raising when the cancel comes as its own wait completes. The member's next sentence must
    # not then be pulled into the ended turn (issue 12's two_sentences room lost it that way).
    script_words(fake)
    fake.turns.event_delay = 0.5
    after: list[bytes] = []

    async def source() -> AsyncIterator[bytes]:
        for chunk in tone(600) + silence(700):
            yield chunk
            await asyncio.sleep(0.005)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()  # cancelled on turn.end: swallowed
        for chunk in tone(1000):  # they go on: the next turn's speech
            after.append(chunk)
            yield chunk
            await asyncio.sleep(0.005)

    transcript = await asyncio.wait_for(
        transcriber(client, policy).transcribe(source(), options=TURNS), GUARD_CHUNKS / 50)
    assert transcript.end_reason == "threshold" and transcript.text == "what is the capital of france"
    assert len(after) <= 1  # at most the chunk in hand when the cancel was swallowed


async def test_turn_events_after_the_audio_ran_out_are_not_reported(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy
) -> None:
    script_words(fake)
    fake.turns.event_delay = 5.0  # decided, but still in flight when the audio ends
    turns: list[TurnEvent] = []
    transcript = await transcriber(client, policy).transcribe(
        aiter(Speaker(tone(400) + silence(400), then_silence=False)), on_turn=turns.append, options=TURNS)
    sent = [event["type"] for event in fake.realtime_sessions[0].sent if event["type"].startswith("turn.")]
    assert sent == ["turn.start", "turn.eager_end"]  # flushed out on input_audio.end ...
    assert turns == []  # ... after the utterance was over for the caller
    assert transcript.end_reason == "local" and transcript.turn_detection
