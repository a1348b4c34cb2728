"""UtteranceSegmenter in virtual time: a scripted VAD and a fake clock, no sleeps."""

from __future__ import annotations

import numpy as np
import pytest

from bot.audio.frames import STT_FRAME_BYTES, STT_FRAME_SAMPLES, STT_SAMPLE_RATE
from bot.audio.utterances import SpeechStarted, UtteranceAudio, UtteranceEnded, UtteranceSegmenter
from bot.audio.vad import SpectralVad
from tests.fakes.synth import frames, pink_noise, speech_like, to_int16, white_noise

FRAME = 0.02


class ScriptedVad:
    """Voiced iff the frame's first byte is 1; the frame's second byte numbers it for tracing."""

    def is_speech(self, pcm16k_mono: bytes) -> bool:
        return pcm16k_mono[0] == 1


def frame(voiced: bool, tag: int = 0) -> bytes:
    return bytes([1 if voiced else 0, tag % 256]) + bytes(STT_FRAME_BYTES - 2)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def feed(seg: UtteranceSegmenter, clock: FakeClock, pattern: str, *, start_tag: int = 0) -> list:
    """Push one frame per character ('#' voiced, '.' not), advancing the clock 20 ms each."""
    events = []
    for i, ch in enumerate(pattern):
        events += seg.push(frame(ch == "#", start_tag + i))
        clock.now += FRAME
    return events


def tags(pcm: bytes) -> list[int]:
    return [pcm[i + 1] for i in range(0, len(pcm), STT_FRAME_BYTES)]


def audio(events: list) -> bytes:
    return b"".join(e.pcm for e in events if isinstance(e, UtteranceAudio))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def seg(clock: FakeClock) -> UtteranceSegmenter:
    return UtteranceSegmenter(ScriptedVad(), clock=clock)


def test_start_then_end_on_vad_silence_in_order(seg: UtteranceSegmenter, clock: FakeClock) -> None:
    """10 voiced frames (200 ms) open it; 20 unvoiced frames (400 ms) close it with 'silence'."""
    events = feed(seg, clock, "." * 30 + "#" * 50 + "." * 25)
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "SpeechStarted" and kinds[-1] == "UtteranceEnded"
    assert set(kinds[1:-1]) == {"UtteranceAudio"}
    started, ended = events[0], events[-1]
    assert started.at == pytest.approx(100.0 + 30 * FRAME)  # first voiced frame's arrival
    assert started.detected_at == pytest.approx(100.0 + 39 * FRAME)  # the 10th voiced frame
    assert ended.reason == "silence"
    assert ended.at == pytest.approx(100.0 + (80 + 19) * FRAME)
    # 10 pre-roll + 50 voiced + 20 silent frames
    assert ended.duration == pytest.approx(80 * FRAME)
    assert tags(audio(events)) == list(range(20, 100))
    assert not seg.speaking


def test_preroll_is_included_so_the_first_syllable_is_not_clipped(clock: FakeClock) -> None:
    seg = UtteranceSegmenter(ScriptedVad(), clock=clock, preroll=0.1)
    events = feed(seg, clock, "." * 12 + "#" * 12)
    assert tags(audio(events)) == list(range(7, 24))  # 5 frames (100 ms) before the onset
    seg0 = UtteranceSegmenter(ScriptedVad(), clock=clock, preroll=0.0)
    assert tags(audio(feed(seg0, clock, "." * 12 + "#" * 12))) == list(range(12, 24))


def test_short_dropouts_inside_speech_do_not_prevent_opening(
    seg: UtteranceSegmenter, clock: FakeClock
) -> None:
    events = feed(seg, clock, "##.##.##.##.##")  # 10 voiced in 14 frames
    assert isinstance(events[0], SpeechStarted)


def test_isolated_blips_never_open_an_utterance(seg: UtteranceSegmenter, clock: FakeClock) -> None:
    events = feed(seg, clock, ("###......" * 40) + ("#" * 9 + "." * 10) * 5)
    assert events == []


def test_packet_gap_ends_the_utterance_via_tick(seg: UtteranceSegmenter, clock: FakeClock) -> None:
    """Discord clients just stop sending: tick() closes with 'gap' once 400 ms pass, not before."""
    events = feed(seg, clock, "#" * 30)
    assert isinstance(events[0], SpeechStarted)
    last_arrival = clock.now - FRAME
    assert seg.tick(last_arrival + 0.39) == []
    ended = seg.tick(last_arrival + 0.40)
    assert ended == [UtteranceEnded(duration=pytest.approx(30 * FRAME), reason="gap", at=last_arrival + 0.40)]
    assert seg.tick(last_arrival + 5.0) == []  # already closed: nothing twice


def test_late_packet_closes_the_previous_utterance_first(seg: UtteranceSegmenter, clock: FakeClock) -> None:
    feed(seg, clock, "#" * 30)
    clock.now += 2.0  # no tick in between: the next push notices the gap itself
    events = feed(seg, clock, "#" * 12, start_tag=200)
    assert isinstance(events[0], UtteranceEnded) and events[0].reason == "gap"
    assert isinstance(events[1], SpeechStarted)
    assert tags(audio(events)) == list(range(200, 212))  # no stale pre-roll from before the gap


def test_gap_while_idle_discards_stale_preroll(seg: UtteranceSegmenter, clock: FakeClock) -> None:
    feed(seg, clock, "#" * 8)  # not enough to open
    clock.now += 1.0
    assert seg.tick() == []
    events = feed(seg, clock, "#" * 10, start_tag=100)
    assert isinstance(events[0], SpeechStarted)
    assert tags(audio(events)) == list(range(100, 110))  # the 8 earlier frames are not glued on


def test_max_length_splits_and_continuing_speech_reopens(clock: FakeClock) -> None:
    seg = UtteranceSegmenter(ScriptedVad(), clock=clock, max_utterance=1.0, preroll=0.0)
    events = feed(seg, clock, "#" * 80)
    ends = [e for e in events if isinstance(e, UtteranceEnded)]
    starts = [e for e in events if isinstance(e, SpeechStarted)]
    assert [e.reason for e in ends] == ["max_length"]
    assert ends[0].duration == pytest.approx(1.0)
    assert len(starts) == 2
    # Nothing lost across the split: every frame from the first onset on is emitted exactly once.
    assert tags(audio(events)) == list(range(80))
    order = [type(e) for e in events]
    split = order.index(UtteranceEnded)
    assert order[split + 1] is SpeechStarted


def test_uneven_chunks_are_rechunked_into_20ms_frames(clock: FakeClock) -> None:
    seg = UtteranceSegmenter(ScriptedVad(), clock=clock)
    stream = b"".join(frame(True, i) for i in range(15))
    events = []
    for cut in range(0, len(stream), 1000):  # resampler-like uneven blocks
        events += seg.push(stream[cut : cut + 1000])
    assert isinstance(events[0], SpeechStarted)
    assert tags(audio(events)) == list(range(15))


def test_close_ends_an_open_utterance(seg: UtteranceSegmenter, clock: FakeClock) -> None:
    feed(seg, clock, "#" * 12)
    events = seg.close()
    assert len(events) == 1 and events[0].reason == "gap"
    assert seg.close() == []


def test_bad_configuration_is_refused(clock: FakeClock) -> None:
    with pytest.raises(ValueError):
        UtteranceSegmenter(ScriptedVad(), clock=clock, max_utterance=0.1, min_speech=0.2)


def _pcm16k(signal: np.ndarray) -> list[bytes]:
    return frames(to_int16(signal), STT_FRAME_SAMPLES)


def test_with_the_real_vad_noise_never_opens_and_speech_does(clock: FakeClock) -> None:
    """End to end with SpectralVad: 10 s of white and pink noise opens nothing; then 2 s of
    synthetic speech over the same noise opens exactly one utterance, ended by 'silence' once
    the speech stops and only noise remains."""
    seg = UtteranceSegmenter(SpectralVad(), clock=clock)
    rate = STT_SAMPLE_RATE
    noise = white_noise(5.0, rate, level=0.02) + pink_noise(5.0, rate, level=0.02)
    events = []
    for chunk in _pcm16k(np.concatenate([noise, noise])):
        events += seg.push(chunk)
        clock.now += FRAME
    assert events == []
    speech = speech_like(2.0, rate, level=0.4) + white_noise(2.0, rate, level=0.02, seed=8)
    for chunk in _pcm16k(np.concatenate([speech, noise[:rate]])):
        events += seg.push(chunk)
        clock.now += FRAME
    starts = [e for e in events if isinstance(e, SpeechStarted)]
    ends = [e for e in events if isinstance(e, UtteranceEnded)]
    assert len(starts) == 1 and [e.reason for e in ends] == ["silence"]
    assert 1.9 <= ends[0].duration <= 2.9
