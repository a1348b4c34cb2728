"""Shared by the playback tests: tones, a reader thread shaped like discord.py's AudioPlayer, a
fake voice client for the packet sender, and PyAV decoding of what was played."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import av
import discord
import imageio_ffmpeg
import numpy as np

from bot.audio.frames import OPUS_SILENCE

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
    """What ``bot.voice.sender`` uses of discord.VoiceClient; records each packet sent (with its
    time and the sending thread's name) and each SPEAKING update."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, bytes]] = []
        self.threads: set[str] = set()
        self.speaking: list[discord.SpeakingState] = []
        self.connected = True
        self.timeout = 60.0
        self.ws = self
        self.lock = threading.Lock()

    async def speak(self, state: discord.SpeakingState) -> None:
        self.speaking.append(state)

    def is_connected(self) -> bool:
        return self.connected

    def send_audio_packet(self, data: bytes, *, encode: bool = True) -> None:
        assert not encode
        with self.lock:
            self.sent.append((time.monotonic(), bytes(data)))
            self.threads.add(threading.current_thread().name)

    def audio(self) -> list[bytes]:
        with self.lock:
            return [data for _, data in self.sent if data != OPUS_SILENCE]

    def silences(self) -> int:
        with self.lock:
            return sum(1 for _, data in self.sent if data == OPUS_SILENCE)


async def until(predicate: Callable[[], bool], what: str, steps: int = 2000) -> None:
    for _ in range(steps):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never happened: {what}")
