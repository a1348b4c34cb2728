"""The playout policy in virtual time: packets as a TTS at real time with jitter releases them
through FFmpeg, a player taking one every 20 ms from the policy's start."""

from __future__ import annotations

import random

import pytest

from bot.voice.opus_source import UNDERRUN_WAIT
from bot.voice.playout import DEFAULT_DELAY, FRAME, HISTORY, MAX_WINDOW, PlayoutHistory, PlayoutSegment

CHUNK = 0.0625  # the fake TTS's 6001-byte chunks of float32 at 24 kHz


def ready_times(seconds: float, *, rate: float = 1.0, jitter: float = 0.0, seed: int = 0,
                chunk: float = CHUNK, start: float = 100.0) -> list[float]:
    """When each 20 ms packet is ready: chunk k (after ``chunk`` * (k + 1) of audio) arrives at
    ``start + k * chunk / rate`` +- ``jitter`` (not the first), and a packet needs its whole frame."""
    rng = random.Random(seed)
    chunks = int(seconds / chunk) + 1
    arrivals = [start + k * chunk / rate + (rng.uniform(-jitter, jitter) if k else 0.0) for k in range(chunks)]
    for k in range(1, chunks):  # in order, as over one TCP stream
        arrivals[k] = max(arrivals[k], arrivals[k - 1])
    packets = []
    for p in range(int(seconds / FRAME)):
        needed = (p + 1) * FRAME  # audio up to the end of this packet's frame
        k = min(chunks - 1, int((needed - 1e-9) / chunk))
        packets.append(arrivals[k])
    return packets


def play(history: PlayoutHistory, ready: list[float]) -> tuple[float, int]:
    """(start - first packet, packets read late): a segment fed ``ready``, read every 20 ms by a
    reader that waits ``UNDERRUN_WAIT`` for a packet before sending silence."""
    segment = PlayoutSegment(history)
    index = 0
    start = None
    events = sorted(ready)
    # Feed packets until the policy's start time has come.
    while start is None:
        segment.packet_ready(events[index])
        index += 1
        due = segment.start_at()
        assert due is not None
        next_at = events[index] if index < len(events) else float("inf")
        if due <= next_at:
            start = max(due, events[index - 1])
    segment.started()
    for at in events[index:]:
        segment.packet_ready(at)
    late = sum(1 for p, at in enumerate(ready) if at > start + p * FRAME + UNDERRUN_WAIT)
    segment.close()
    return start - ready[0], late


@pytest.mark.parametrize("seed", range(20))
def test_real_time_with_40ms_jitter_never_runs_dry_and_costs_the_default_delay(seed: int) -> None:
    history = PlayoutHistory()
    waited, late = play(history, ready_times(3.0, jitter=0.040, seed=seed))
    assert late == 0
    assert waited == pytest.approx(DEFAULT_DELAY, abs=1e-9)


@pytest.mark.parametrize(("rate", "within"), [(4.0, 0.040), (50.0, 0.010)])
def test_faster_than_real_time_starts_sooner(rate: float, within: float) -> None:
    waited, late = play(PlayoutHistory(), ready_times(3.0, rate=rate, jitter=0.010))
    assert late == 0
    assert waited <= within


def test_the_window_learns_a_slower_stream_and_forgets_it_when_the_network_calms() -> None:
    history = PlayoutHistory()
    _, late = play(history, ready_times(1.2, rate=0.95))  # 5 % slower than real time: runs dry
    assert late > 0
    assert history.window(3) == pytest.approx(0.040 + DEFAULT_DELAY)  # one bad segment is forgiven
    _, late = play(history, ready_times(1.2, rate=0.95, start=150.0))
    assert late > 0
    assert 0.11 <= history.window(3) <= MAX_WINDOW  # ~60 ms behind by the end of 1.2 s
    waited, late = play(history, ready_times(1.2, rate=0.95, start=200.0))
    assert late == 0 and waited > DEFAULT_DELAY
    for seed in range(HISTORY):
        play(history, ready_times(2.0, jitter=0.010, seed=seed, start=300.0 + seed * 10))
    # The first chunk's 40 ms + a frame's quantisation + 10 ms jitter: 20 ms sooner than the default.
    assert history.window(3) < 0.040 + DEFAULT_DELAY - 0.020


def test_a_stall_is_capped_not_waited_for_up_front() -> None:
    history = PlayoutHistory()
    history.learn(5.0)
    history.learn(5.0)
    assert history.window(3) == MAX_WINDOW
