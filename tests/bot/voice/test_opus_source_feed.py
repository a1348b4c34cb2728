"""Feeding a reply's FFmpeg costs the feeder (the event loop) no syscall and no numpy: the pipe
thread converts and writes, so a slow or stopped FFmpeg never holds the loop up."""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest

from bot.audio.frames import F32LE
from bot.voice import opus_source
from bot.voice.opus_source import StreamingOpusSource
from tests.bot.voice.playback_helpers import FFMPEG, RATE, Reader, decode, peaks

CHUNK = 6000  # bytes: the fake Mistral's TTS chunk, 62.5 ms of float32


def float_tone(seconds: float, *, amplitude: float = 0.5) -> bytes:
    t = np.arange(round(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * 440 * t)).astype("<f4").tobytes()


def play_out(source: StreamingOpusSource) -> np.ndarray:
    source.finish()
    reader = Reader(source)
    reader.start()
    reader.join(20)
    assert not reader.is_alive() and reader.error is None
    source.cleanup()
    return decode(reader.packets)


def test_the_feeding_thread_writes_no_audio_and_converts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[tuple[str, int]] = []  # (thread, bytes) of every os.write
    real_write = os.write

    def recording_write(fd: int, data: bytes) -> int:
        writes.append((threading.current_thread().name, len(data)))
        return real_write(fd, data)

    conversions: list[str] = []
    real_clip = opus_source.clip_float32

    def recording_clip(pcm: bytes) -> bytes:
        conversions.append(threading.current_thread().name)
        return real_clip(pcm)

    monkeypatch.setattr(os, "write", recording_write)
    monkeypatch.setattr(opus_source, "clip_float32", recording_clip)
    feeder = threading.current_thread().name
    pcm = float_tone(1.0)
    source = StreamingOpusSource(executable=FFMPEG)
    fed = 0
    for start in range(0, len(pcm), CHUNK):
        source.feed(pcm[start : start + CHUNK], F32LE)
        fed += 1
    audio = play_out(source)

    # The feeder's only writes are the 1-byte wake-ups of the pipe thread; the audio went from there.
    assert [size for thread, size in writes if thread == feeder and size > 1] == []
    assert sum(size for thread, size in writes if thread == "ffmpeg-pipes") >= len(pcm)
    # Each chunk was clipped once, on the pipe thread (no int16 round trip anywhere).
    assert conversions == ["ffmpeg-pipes"] * fed
    assert len(audio) / 48_000 - source.padded_seconds == pytest.approx(1.0, abs=0.05)
    assert peaks(audio, count=1)[0] == pytest.approx(440, abs=5)


def test_out_of_range_float_speech_plays_clipped_and_nan_as_silence() -> None:
    loud = np.frombuffer(float_tone(1.0, amplitude=4.0), "<f4").copy()
    loud[RATE // 2 : RATE // 2 + 100] = np.nan
    loud[RATE // 4] = np.inf
    played = []
    for pcm in (loud, np.nan_to_num(np.clip(loud, -1.0, 1.0), nan=0.0)):
        source = StreamingOpusSource(executable=FFMPEG)
        source.feed(pcm.astype("<f4").tobytes(), F32LE)
        source.finish()
        reader = Reader(source)
        reader.start()
        reader.join(20)
        source.cleanup()
        played.append(reader.packets)
    # FFmpeg got the same bytes as for audio clipped beforehand: the same Opus packets came out
    # (finished before reading, so no underrun padding differs between the runs).
    assert len(played[0]) >= 45 and played[0] == played[1]


def test_a_stopped_ffmpeg_never_blocks_the_feeder_and_gets_everything_once_it_runs_again() -> None:
    pcm = float_tone(4.0)  # 384 KB: six times what the pipe holds
    source = StreamingOpusSource(executable=FFMPEG)
    os.kill(source.process.pid, signal.SIGSTOP)
    try:
        feeder = threading.Thread(
            target=lambda: [source.feed(pcm[i : i + CHUNK], F32LE) for i in range(0, len(pcm), CHUNK)], daemon=True
        )
        feeder.start()
        feeder.join(10)
        assert not feeder.is_alive(), "feeding blocked on a stopped FFmpeg"
        assert source.first_packet_ready_at is None  # it really was stopped throughout
    finally:
        os.kill(source.process.pid, signal.SIGCONT)
    audio = play_out(source)
    assert len(audio) / 48_000 - source.padded_seconds == pytest.approx(4.0, abs=0.05)
