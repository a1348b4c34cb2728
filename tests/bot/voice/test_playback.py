"""StreamingOpusSource and SpeechPlayer against the real bundled FFmpeg, without Discord.

The AudioSource is driven the way discord.py's AudioPlayer drives it: ``read()`` from another
thread until it returns b"". The Opus packets are decoded with PyAV and compared to what was fed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import av
import discord
import imageio_ffmpeg
import numpy as np
import pytest

from bot.voice.playback import FRAME_SECONDS, OPUS_SILENCE, SpeechPlayer, StreamingOpusSource, ffmpeg_args

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
RATE = 24_000


def tone(seconds: float, freq: float = 440.0, *, harmonic: float | None = 1320.0) -> bytes:
    t = np.arange(round(seconds * RATE)) / RATE
    wave = 0.5 * np.sin(2 * np.pi * freq * t)
    if harmonic is not None:
        wave += 0.2 * np.sin(2 * np.pi * harmonic * t)
    return (wave * 20_000).astype("<i2").tobytes()


def chunks(pcm: bytes, sizes: list[int]) -> list[bytes]:
    out, i = [], 0
    for size in sizes:
        out.append(pcm[i : i + size])
        i += size
    out.append(pcm[i:])
    return [c for c in out if c]


def decode(packets: list[bytes]) -> np.ndarray:
    """Opus packets -> the first channel of the 48 kHz decoded audio, as float in [-1, 1]."""
    codec = av.CodecContext.create("libopus", "r")
    parts = []
    for packet in packets:
        for frame in codec.decode(av.packet.Packet(packet)):
            assert frame.sample_rate == 48_000
            samples = frame.to_ndarray()
            left = samples[0] if frame.format.is_planar else samples.reshape(-1, len(frame.layout.channels))[:, 0]
            parts.append(left.astype(np.float64) / (32768.0 if samples.dtype == np.int16 else 1.0))
    return np.concatenate(parts) if parts else np.zeros(0)


def peaks(audio: np.ndarray, rate: int = 48_000, count: int = 2) -> list[float]:
    """The ``count`` strongest frequencies, strongest first, from the middle of the audio."""
    middle = audio[len(audio) // 4 : 3 * len(audio) // 4]
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(len(middle))))
    freqs = np.fft.rfftfreq(len(middle), 1 / rate)
    found: list[float] = []
    for index in np.argsort(spectrum)[::-1]:
        if all(abs(freqs[index] - f) > 50 for f in found):
            found.append(float(freqs[index]))
        if len(found) == count:
            break
    return found


class Reader(threading.Thread):
    """Calls ``read()`` like AudioPlayer does, minus the 20 ms pacing (``pace`` per packet instead)."""

    def __init__(self, source: discord.AudioSource, *, pace: float = 0.0) -> None:
        super().__init__(daemon=True)
        self.source = source
        self.pace = pace
        self.packets: list[bytes] = []
        self.silences = 0
        self.error: BaseException | None = None
        self.stop_event = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                data = self.source.read()
                if not data:
                    return
                if data == OPUS_SILENCE:
                    self.silences += 1
                    time.sleep(0.002)
                    continue
                self.packets.append(data)
                if self.pace:
                    time.sleep(self.pace)
        except BaseException as error:  # the test asserts there is none
            self.error = error


class FakeVoiceClient:
    """``play``/``stop`` like discord.VoiceClient: a reader thread, then ``after``, then cleanup."""

    def __init__(self, *, pace: float = 0.0) -> None:
        self.pace = pace
        self.plays: list[StreamingOpusSource] = []
        self.ready_when_played: list[bool] = []
        self.reader: Reader | None = None
        self.thread: threading.Thread | None = None
        self.stops = 0

    def play(self, source: Any, *, after: Callable[[Exception | None], Any] | None = None) -> None:
        self.plays.append(source)
        self.ready_when_played.append(source.first_packet_ready_at is not None)
        reader = Reader(source, pace=self.pace)
        self.reader = reader

        def run() -> None:
            reader.run()
            if after is not None:
                after(reader.error)  # type: ignore[arg-type]
            source.cleanup()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stops += 1
        if self.reader is not None:
            self.reader.stop_event.set()


async def until(predicate: Callable[[], bool], what: str, steps: int = 2000) -> None:
    for _ in range(steps):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never happened: {what}")


def test_command_is_low_latency_ogg_opus_from_raw_pcm() -> None:
    args = ffmpeg_args("ffmpeg-exe")
    assert args[0] == "ffmpeg-exe"
    joined = " ".join(args)
    for flag in (
        "-f s16le", "-ar 24000", "-ac 1", "-probesize 32", "-analyzeduration 0", "-fflags nobuffer",
        "-i pipe:", "-f ogg", "-acodec libopus", "-ar 48000", "-ac 2", "-frame_duration 20",
        "-application voip", "-page_duration 20000", "-flush_packets 1",
    ):  # fmt: skip
        assert flag in joined
    assert joined.index("-f s16le") < joined.index("-i pipe:") < joined.index("-f ogg")


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
        source.feed(tone(0.3))  # less than two of FFmpeg's 85 ms input blocks would leave ~50 ms behind
        reader = Reader(source)
        reader.start()
        for _ in range(2000):
            if source.played_seconds >= 0.3 - 1e-9:
                break
            time.sleep(0.002)
        assert source.played_seconds == pytest.approx(0.3, abs=1e-9)
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


async def test_player_plays_a_reply_of_several_sentences_through_one_stream() -> None:
    voice = FakeVoiceClient()
    player = SpeechPlayer(voice, ffmpeg_executable=FFMPEG, clock=time.monotonic)
    player.begin_reply()
    assert voice.plays == []  # nothing to play until FFmpeg has a packet
    process = player.source.process if player.source else None
    for sentence in (tone(0.6), tone(0.4, 440.0)):
        for chunk in chunks(sentence, [2400, 4800, 9600]):
            player.feed(chunk)
            await asyncio.sleep(0.01)
    player.finish()
    played = await asyncio.wait_for(player.wait_done(), 10)

    assert len(voice.plays) == 1 and voice.ready_when_played == [True]
    assert voice.reader is not None and voice.reader.error is None
    assert played == pytest.approx(1.0, abs=0.04)
    assert player.played_seconds == played
    assert not player.playing
    assert process is not None and process.poll() is not None
    audio = decode(voice.reader.packets)
    assert peaks(audio)[0] == pytest.approx(440, abs=5)
    assert len(audio) / 48_000 - voice.plays[0].padded_seconds == pytest.approx(1.0, abs=0.04)


async def test_interrupt_stops_at_once_and_reports_what_was_played() -> None:
    voice = FakeVoiceClient(pace=0.005)
    player = SpeechPlayer(voice, ffmpeg_executable=FFMPEG, clock=time.monotonic)
    player.begin_reply()
    source = player.source
    assert source is not None
    player.feed(tone(3.0))
    await until(lambda: voice.reader is not None and len(voice.reader.packets) >= 10, "10 packets played")

    played = player.interrupt()

    assert voice.stops == 1
    assert not player.playing
    assert source.process.poll() is not None
    reader = voice.reader
    assert reader is not None and voice.thread is not None
    voice.thread.join(5)
    assert not voice.thread.is_alive() and reader.error is None
    # The reader may have had one packet in hand when playback stopped.
    assert len(reader.packets) * FRAME_SECONDS - played in (pytest.approx(0.0), pytest.approx(FRAME_SECONDS))
    assert played < 3.0 - 1.0  # most of the reply was never sent
    assert await asyncio.wait_for(player.wait_done(), 1) == played
    player.feed(tone(0.1))  # late TTS chunks after barge-in are dropped
    assert player.interrupt() == 0.0


async def test_reply_without_audio_finishes_without_playing() -> None:
    voice = FakeVoiceClient()
    player = SpeechPlayer(voice, ffmpeg_executable=FFMPEG, clock=time.monotonic)
    player.begin_reply()
    source = player.source
    assert source is not None
    player.finish()
    assert await asyncio.wait_for(player.wait_done(), 10) == 0.0
    assert voice.plays == []
    assert source.process.poll() is not None


async def test_a_new_reply_replaces_one_still_playing() -> None:
    voice = FakeVoiceClient(pace=0.005)
    player = SpeechPlayer(voice, ffmpeg_executable=FFMPEG, clock=time.monotonic)
    player.begin_reply()
    first = player.source
    player.feed(tone(2.0))
    await until(lambda: bool(voice.plays), "first reply playing")
    player.begin_reply()
    assert first is not None and first.process.poll() is not None
    assert player.source is not first and player.playing
    player.close()
    assert not player.playing
