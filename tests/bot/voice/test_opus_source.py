"""StreamingOpusSource against the real bundled FFmpeg, without Discord.

The AudioSource is driven the way discord.py's AudioPlayer drives it: ``read()`` from another
thread until it returns b"". The Opus packets are decoded with PyAV and compared to what was fed.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from bot.audio.frames import OPUS_SILENCE
from bot.voice.opus_source import FRAME_SECONDS, StreamingOpusSource
from bot.voice.playout import PlayoutHistory
from tests.bot.voice.playback_helpers import FFMPEG, Reader, chunks, decode, peaks, tone


def test_streamed_chunks_play_back_as_the_same_audio() -> None:
    pcm = tone(1.0)
    source = StreamingOpusSource(executable=FFMPEG)
    reader = Reader(source)
    reader.start()
    # Odd sizes split samples between chunks; the pauses let the reader run dry in between.
    for chunk in chunks(pcm, [4801, 9599, 1, 7000, 12_345]):
        source.feed(chunk)
        time.sleep(0.03)
    source.finish()
    reader.join(10)
    assert not reader.is_alive() and reader.error is None
    source.cleanup()
    assert source.process.poll() is not None

    audio = decode(reader.packets)
    duration = len(audio) / 48_000
    # Decoded = fed audio + silence pushed in on underruns + Opus pre-skip and last-frame padding.
    assert duration - source.padded_seconds == pytest.approx(1.0, abs=0.04)
    assert source.played_seconds == pytest.approx(1.0, abs=0.04)
    assert len(reader.packets) * FRAME_SECONDS == pytest.approx(duration, abs=1e-9)
    strongest = peaks(audio)
    assert strongest[0] == pytest.approx(440, abs=5)
    assert strongest[1] == pytest.approx(1320, abs=5)
    # Loud where the tone is: the codec reproduced the signal, not just its length.
    # Per-20 ms-window level, upper quartile: the padding silence windows do not count.
    windows = audio[: len(audio) // 960 * 960].reshape(-1, 960)
    rms = np.percentile(np.sqrt(np.mean(windows**2, axis=1)), 75)
    assert rms == pytest.approx(np.sqrt(0.5**2 / 2 + 0.2**2 / 2) * 20_000 / 32768, rel=0.2)


def test_audio_stuck_in_ffmpeg_is_pushed_out_without_finish() -> None:
    source = StreamingOpusSource(executable=FFMPEG)
    try:
        source.feed(tone(0.31))  # 15 frames and 10 ms, which FFmpeg keeps until the next 10 ms come
        reader = Reader(source)
        reader.start()
        for _ in range(2000):
            if source.played_seconds >= 0.31 - 1e-9:
                break
            time.sleep(0.002)
        assert source.played_seconds == pytest.approx(0.31, abs=1e-9)
        assert source.padded_seconds > 0
    finally:
        source.cleanup()
    reader.join(5)
    assert reader.error is None


def test_stop_reading_returns_played_packets_and_cleanup_leaves_no_process() -> None:
    source = StreamingOpusSource(executable=FFMPEG)
    source.feed(tone(3.0))
    got = []
    while len(got) < 10:
        data = source.read()
        assert data
        if data != OPUS_SILENCE:
            got.append(data)
    played = source.stop_reading()
    assert played == pytest.approx(10 * FRAME_SECONDS)
    assert source.read() == b""
    source.cleanup()
    source.cleanup()  # idempotent
    assert source.process.poll() is not None
    assert not any(t.name.endswith(f":{source.process.pid}") and t.is_alive() for t in threading.enumerate())


def test_ffmpeg_crash_ends_the_source_without_raising_into_the_reader() -> None:
    source = StreamingOpusSource(executable=FFMPEG)
    reader = Reader(source, pace=0.002)
    reader.start()
    source.feed(tone(2.0))
    for _ in range(2000):
        if reader.packets:
            break
        time.sleep(0.002)
    source.process.kill()
    source.feed(tone(0.5))  # feeding a dead FFmpeg is harmless
    reader.join(10)
    assert not reader.is_alive()
    assert reader.error is None
    assert source.read() == b""
    source.cleanup()
    assert source.process.poll() is not None


class PacedReader(threading.Thread):
    """Reads every 20 ms like discord.py's AudioPlayer; counts what it got."""

    def __init__(self, source: StreamingOpusSource) -> None:
        super().__init__(daemon=True)
        self.source = source
        self.packets: list[bytes] = []
        self.silences = 0

    def run(self) -> None:
        start, ticks = time.perf_counter(), 0
        while data := self.source.read():
            if data == OPUS_SILENCE:
                self.silences += 1
            else:
                self.packets.append(data)
            ticks += 1
            time.sleep(max(0.0, start + ticks * FRAME_SECONDS - time.perf_counter()))


def test_a_stream_dry_for_long_restarts_with_its_own_wait_and_learns_nothing_from_the_gap() -> None:
    history = PlayoutHistory()
    source = StreamingOpusSource(executable=FFMPEG, playout=history)
    reader = PacedReader(source)
    try:
        source.feed(tone(0.4))
        reader.start()
        for _ in range(2000):
            if source.underruns:
                break
            time.sleep(0.002)
        assert source.underruns  # the first sentence has played out
        time.sleep(0.3)  # the next sentence's speech is late
        second = tone(0.5, 660.0, harmonic=None)
        for chunk in chunks(second, [3000] * 9):  # 62.5 ms chunks at real time
            source.feed(chunk)
            time.sleep(0.0625)
        source.finish()
        reader.join(10)
    finally:
        source.cleanup()
    assert source.restarts == 1
    assert all(need < 0.2 for need in history.needs), history.needs  # TTS latency is not jitter
    # Every fed sample once, give or take the encoder's last, partly filled frame and its look-ahead.
    assert source.played_seconds == pytest.approx(0.9, abs=0.027)
