from __future__ import annotations

from dataclasses import dataclass

import pytest

from bot.conversation.timings import GuildTimings, StageSummary, TimingsLog, TurnTimings


@dataclass
class FakeClock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


def test_durations_between_stages_and_since_speech_end() -> None:
    clock = FakeClock()
    timings = TurnTimings(clock=clock)
    timings.mark("speech_end")
    clock.now = 100.25
    timings.mark("transcript_final")
    clock.now = 100.5
    timings.mark_once("first_token")
    clock.now = 100.75
    timings.mark_once("first_token")  # later tokens do not move the first one
    timings.mark_at("first_tts_audio", 101.0)  # measured elsewhere; first_sentence never happened
    timings.mark_at("first_packet_sent", None)  # not reached: ignored
    assert timings.steps_ms() == pytest.approx(
        {"transcript_final": 250.0, "first_token": 250.0, "first_tts_audio": 500.0}
    )
    assert timings.since_speech_end_ms() == pytest.approx(
        {"transcript_final": 250.0, "first_token": 500.0, "first_tts_audio": 1000.0}
    )
    assert timings.at("first_sentence") is None


def test_mark_replaces_and_mark_once_keeps() -> None:
    clock = FakeClock()
    timings = TurnTimings(clock=clock)
    timings.mark("done")
    clock.now = 105.0
    assert timings.mark("done") == 105.0
    assert timings.mark_once("done") == 105.0
    with pytest.raises(ValueError, match="unknown stage"):
        timings.mark("nonsense")  # type: ignore[arg-type]


def test_since_speech_end_is_empty_without_speech_end() -> None:
    timings = TurnTimings(clock=FakeClock())
    timings.mark("first_token")
    assert timings.since_speech_end_ms() == {}


def turn(clock: FakeClock, packet_after_s: float | None) -> TurnTimings:
    timings = TurnTimings(clock=clock)
    timings.mark_at("speech_end", 0.0)
    timings.mark_at("transcript_final", 0.2)
    if packet_after_s is not None:
        timings.mark_at("first_packet_sent", packet_after_s)
    return timings


def test_log_keeps_the_last_n_and_summarises_median_and_p95() -> None:
    clock = FakeClock()
    log = TimingsLog(maxlen=20)
    log.add(turn(clock, 99.0))  # pushed out by the 20 below
    for i in range(1, 21):
        log.add(turn(clock, i / 10))  # 100 ms .. 2000 ms
    log.add(turn(clock, None))  # a turn interrupted before any audio
    assert len(log) == 20
    summary = log.summary()
    assert summary["transcript_final"] == StageSummary(
        count=20, median_ms=pytest.approx(200.0), p95_ms=pytest.approx(200.0)
    )
    packet = summary["first_packet_sent"]
    assert packet.count == 19  # 200..2000 ms remain after the oldest two were pushed out
    assert packet.median_ms == pytest.approx(1100.0)
    assert packet.p95_ms == pytest.approx(2000.0)  # nearest rank: ceil(0.95 * 19) = 19th
    assert "first_token" not in summary
    lines = log.describe()
    assert lines[0] == "transcript_final: median 200 ms, p95 200 ms (n=20)"


def test_guild_timings_are_separate_and_bounded() -> None:
    guilds = GuildTimings(maxlen=2)
    for _ in range(3):
        guilds.log(1).add(turn(FakeClock(), 1.0))
    assert len(guilds.log(1)) == 2
    assert len(guilds.log(2)) == 0
    guilds.forget(1)
    assert len(guilds.log(1)) == 0
    with pytest.raises(ValueError):
        TimingsLog(maxlen=0)
