"""What feeds the metric families: the meter's record, the retry policy's hook, voice stats, loop lag."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from bot.limits.pricing import PriceTable
from bot.metrics import CountedMeter, LoopLagMonitor, Metrics, RetryMetrics, VoiceMetrics
from bot.mistral import RateLimited, RequestRejected, RetryPolicy, ServiceTimeout, ServiceUnavailable
from bot.voice.stats import ReceiveStats
from tests.bot.mistral.conftest import VirtualClock


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


class RecordingMeter:
    def __init__(self) -> None:
        self.recorded: list[tuple[int, int | None, str, float]] = []

    async def admit(self, guild_id: int, user_id: int) -> str | None:
        return "no" if user_id == 13 else None

    async def record(self, guild_id: int, user_id: int | None, kind: str, quantity: float) -> None:
        if kind not in {"stt_seconds", "chat_input_tokens", "chat_output_tokens", "tts_characters"}:
            raise ValueError(kind)
        self.recorded.append((guild_id, user_id, kind, quantity))


async def test_the_counted_meter_passes_everything_through_and_counts_usage_and_cost() -> None:
    metrics, inner = Metrics(), RecordingMeter()
    prices = PriceTable(stt_usd_per_minute=0.6, chat_input_usd_per_million=1.0, chat_output_usd_per_million=3.0,
                        tts_usd_per_million_characters=16.0)
    meter = CountedMeter(inner, metrics, prices)
    assert await meter.admit(1, 2) is None and await meter.admit(1, 13) == "no"
    await meter.record(1, 2, "stt_seconds", 30.0)
    await meter.record(1, 2, "chat_input_tokens", 1000)
    await meter.record(1, 2, "chat_output_tokens", 500)
    await meter.record(1, None, "tts_characters", 250)
    await meter.record(1, None, "tts_characters", 0)  # nothing used: nothing counted
    with pytest.raises(ValueError, match="bogus"):
        await meter.record(1, 2, "bogus", 5)

    assert len(inner.recorded) == 5
    assert value(metrics, "voxcord_stt_audio_seconds_total") == 30.0
    assert value(metrics, "voxcord_chat_tokens_total", direction="input") == 1000
    assert value(metrics, "voxcord_chat_tokens_total", direction="output") == 500
    assert value(metrics, "voxcord_tts_characters_total") == 250
    assert value(metrics, "voxcord_estimated_cost_usd_total", kind="stt_seconds") == pytest.approx(0.3)
    assert value(metrics, "voxcord_estimated_cost_usd_total", kind="chat_output_tokens") == pytest.approx(0.0015)
    assert value(metrics, "voxcord_estimated_cost_usd_total", kind="tts_characters") == pytest.approx(0.004)


async def test_retries_and_failures_are_counted_by_operation_and_kind(clock: VirtualClock) -> None:
    metrics = Metrics()
    policy = RetryPolicy(max_attempts=4, max_total_seconds=60, sleep=clock.sleep, clock=clock, random=lambda: 0.5,
                         observer=RetryMetrics(metrics))
    failures = [ServiceUnavailable("chat: 503", operation="chat", status=503),
                RateLimited("chat: 429", operation="chat", retry_after=1.0)]

    async def flaky() -> str:
        if failures:
            raise failures.pop(0)
        return "ok"

    assert await policy.run("chat", flaky) == "ok"

    async def rejected() -> str:
        raise RequestRejected("speech: 401", operation="speech", status=401)

    with pytest.raises(RequestRejected):
        await policy.run("speech", rejected)

    async def stalled() -> str:
        raise ServiceTimeout("transcription: timed out", operation="transcription")

    with pytest.raises(ServiceTimeout):
        await policy.run("transcription", stalled)

    errors = {(s.labels["operation"], s.labels["kind"]): s.value
              for s in metrics.mistral_errors.collect()[0].samples if s.name.endswith("_total")}
    retries = {(s.labels["operation"], s.labels["kind"]): s.value
               for s in metrics.mistral_retries.collect()[0].samples if s.name.endswith("_total")}
    assert errors == {("chat", "unavailable"): 1, ("chat", "rate_limited"): 1, ("speech", "rejected"): 1,
                      ("transcription", "timeout"): 4}
    # A rejected request is never retried; the last failed timeout is not retried either.
    assert retries == {("chat", "unavailable"): 1, ("chat", "rate_limited"): 1, ("transcription", "timeout"): 3}


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@dataclass
class FakeVoiceClient:
    receive_stats: ReceiveStats = field(default_factory=ReceiveStats)


@dataclass
class FakeSession:
    guild_id: int
    voice_client: object


async def test_voice_sessions_and_dave_failures_survive_the_session_that_saw_them() -> None:
    metrics = Metrics()
    voice = VoiceMetrics(metrics)
    calls: list[str] = []

    async def engine_start(session: FakeSession) -> None:
        calls.append(f"start {session.guild_id}")

    async def engine_stop(session: FakeSession) -> None:
        calls.append(f"stop {session.guild_id}")

    on_start, on_stop = voice.hooks(engine_start, engine_stop)
    first, second = FakeSession(1, FakeVoiceClient()), FakeSession(2, FakeVoiceClient())
    plain = FakeSession(3, object())  # a voice client without receive stats
    for session in (first, second, plain):
        await on_start(session)
    assert value(metrics, "voxcord_voice_sessions") == 3
    assert value(metrics, "voxcord_voice_sessions_started_total") == 3

    first.voice_client.receive_stats.dave.failures.update({"unencrypted": 2, "no_valid_cryptor": 1})
    second.voice_client.receive_stats.dave.failures["unencrypted"] = 5
    assert value(metrics, "voxcord_dave_decrypt_failures_total", reason="unencrypted") == 7

    await on_stop(first)
    first.voice_client.receive_stats.dave.failures["unencrypted"] = 100  # after the session: not counted
    assert value(metrics, "voxcord_voice_sessions") == 2
    assert value(metrics, "voxcord_dave_decrypt_failures_total", reason="unencrypted") == 7
    assert value(metrics, "voxcord_dave_decrypt_failures_total", reason="no_valid_cryptor") == 1
    await on_stop(second)
    await on_stop(plain)
    assert value(metrics, "voxcord_voice_sessions") == 0
    assert value(metrics, "voxcord_dave_decrypt_failures_total", reason="unencrypted") == 7
    assert calls == ["start 1", "start 2", "start 3", "stop 1", "stop 2", "stop 3"]


class Stop(Exception):
    pass


async def test_loop_lag_is_how_late_each_wake_up_comes() -> None:
    now = [0.0]
    lateness = [0.0, 0.003, 0.25]
    observed: list[float] = []

    async def sleep(seconds: float) -> None:
        if not lateness:
            raise Stop
        now[0] += seconds + lateness.pop(0)

    monitor = LoopLagMonitor(observed.append, interval=0.5, clock=lambda: now[0], sleep=sleep)
    with pytest.raises(Stop):
        await monitor.run()
    assert observed == pytest.approx([0.0, 0.003, 0.25])


async def test_the_loop_lag_monitor_feeds_the_histogram_and_stops_cleanly() -> None:
    metrics = Metrics()
    monitor = LoopLagMonitor(metrics.loop_lag_seconds.observe, interval=0.001)
    async with monitor:
        async with asyncio.timeout(10):
            while not value(metrics, "voxcord_event_loop_lag_seconds_count"):
                await asyncio.sleep(0.001)
    count = value(metrics, "voxcord_event_loop_lag_seconds_count")
    await asyncio.sleep(0.01)
    assert value(metrics, "voxcord_event_loop_lag_seconds_count") == count  # stopped: no more samples
