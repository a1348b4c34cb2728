"""Deterministic speech-like test audio and Opus round trips through PyAV's bundled libopus.

Pure tones make poor test speech: VAD and end-of-turn logic key on syllable rhythm, pitch
movement and pauses. ``synth_speech`` makes voiced harmonic bursts with a moving pitch, formant
colouring and 3-6 Hz syllable envelopes separated by short gaps, reproducible from a seed.
"""

from __future__ import annotations

import fractions
from collections.abc import Iterable

import av
import numpy as np

SAMPLE_RATE = 48_000
CHANNELS = 2
FRAME_SAMPLES = 960  # 20 ms, the only frame size Discord clients send

# Rough first three formants of a few vowels (Hz); enough for a speech-like spectral envelope.
_VOWEL_FORMANTS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480))


def synth_speech(seconds: float, *, seed: int = 0, level: float = 0.3,
                 pause_every: float = 1.2, pause_seconds: float = 0.25) -> np.ndarray:
    """Return ``(n, 2)`` int16 PCM at 48 kHz that sounds roughly like voiced speech.

    ``pause_every`` inserts a silent gap of ``pause_seconds`` at that period, like breaths between
    phrases, so turn-taking code has something to detect.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    # Pitch wanders between ~95 and ~210 Hz: a slow declination plus per-syllable movement.
    base = rng.uniform(110, 170)
    f0 = base * (1 + 0.18 * np.sin(2 * np.pi * rng.uniform(0.3, 0.7) * t)) * (1 - 0.1 * t / max(seconds, 1e-9))
    f0 += 12 * np.sin(2 * np.pi * rng.uniform(3, 5) * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    formants = _VOWEL_FORMANTS[int(rng.integers(len(_VOWEL_FORMANTS)))]
    voiced = np.zeros(n)
    for harmonic in range(1, 30):
        freq = harmonic * f0
        # Gain of each harmonic from the distance to the nearest formant: a crude vocal tract.
        gain = sum(np.exp(-(((freq - f) / 160.0) ** 2)) for f in formants) + 0.05 / harmonic
        voiced += gain * np.sin(harmonic * phase)
    voiced += 0.02 * rng.standard_normal(n)  # breath noise keeps Opus out of pure-tone mode
    envelope = _syllable_envelope(n, rng)
    gap = (t % pause_every) > (pause_every - pause_seconds) if pause_every > 0 else np.zeros(n, bool)
    envelope[gap] = 0.0
    mono = voiced * envelope
    peak = float(np.max(np.abs(mono))) or 1.0
    pcm = (mono / peak * level * 32767).astype(np.int16)
    return np.repeat(pcm[:, None], CHANNELS, axis=1)


def _syllable_envelope(n: int, rng: np.random.Generator) -> np.ndarray:
    envelope = np.zeros(n)
    pos = 0
    while pos < n:
        length = int(rng.uniform(0.15, 0.3) * SAMPLE_RATE)  # 3-6 syllables per second
        window = np.hanning(length) ** 0.7 * rng.uniform(0.6, 1.0)
        end = min(n, pos + length)
        envelope[pos:end] = window[: end - pos]
        pos = end + int(rng.uniform(0.0, 0.06) * SAMPLE_RATE)
    return envelope


def silence(seconds: float) -> np.ndarray:
    return np.zeros((int(seconds * SAMPLE_RATE), CHANNELS), np.int16)


def as_pcm_array(pcm: np.ndarray | bytes) -> np.ndarray:
    """Accept interleaved int16 bytes or an ``(n, 2)`` array; return the array."""
    if isinstance(pcm, bytes | bytearray | memoryview):
        return np.frombuffer(bytes(pcm), np.int16).reshape(-1, CHANNELS)
    if pcm.dtype != np.int16 or pcm.ndim != 2 or pcm.shape[1] != CHANNELS:
        raise ValueError("expected int16 PCM shaped (n, 2) at 48 kHz")
    return pcm


class OpusEncoder:
    """48 kHz stereo Opus, one packet per 20 ms frame, as a Discord client produces."""

    def __init__(self, bitrate: int = 64_000) -> None:
        self._ctx = av.CodecContext.create("libopus", "w")
        self._ctx.sample_rate = SAMPLE_RATE
        self._ctx.layout = "stereo"
        self._ctx.format = "s16"
        self._ctx.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self._ctx.bit_rate = bitrate
        self._ctx.open()
        self._pts = 0

    def encode_frame(self, frame: np.ndarray) -> list[bytes]:
        """Encode exactly one 20 ms frame (zero-padded if short). Usually one packet comes out."""
        if len(frame) < FRAME_SAMPLES:
            frame = np.vstack([frame, np.zeros((FRAME_SAMPLES - len(frame), CHANNELS), np.int16)])
        av_frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(frame).reshape(1, -1),
                                              format="s16", layout="stereo")
        av_frame.sample_rate = SAMPLE_RATE
        av_frame.pts = self._pts
        self._pts += FRAME_SAMPLES
        return [bytes(p) for p in self._ctx.encode(av_frame)]

    def flush(self) -> list[bytes]:
        return [bytes(p) for p in self._ctx.encode(None)]


def encode_opus(pcm: np.ndarray | bytes, *, bitrate: int = 64_000) -> list[bytes]:
    """Encode PCM into 20 ms Opus packets; the encoder's look-ahead adds one trailing packet."""
    samples = as_pcm_array(pcm)
    encoder = OpusEncoder(bitrate)
    packets: list[bytes] = []
    for start in range(0, len(samples), FRAME_SAMPLES):
        packets += encoder.encode_frame(samples[start : start + FRAME_SAMPLES])
    return packets + encoder.flush()


def decode_opus(packets: Iterable[bytes]) -> np.ndarray:
    """Decode Opus packets to ``(n, 2)`` int16 PCM at 48 kHz."""
    ctx = av.CodecContext.create("libopus", "r")
    ctx.sample_rate = SAMPLE_RATE
    ctx.layout = "stereo"
    chunks = [frame.to_ndarray().reshape(-1, CHANNELS)
              for packet in packets for frame in ctx.decode(av.Packet(packet))]
    if not chunks:
        return np.zeros((0, CHANNELS), np.int16)
    return np.concatenate(chunks).astype(np.int16)


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if len(pcm) else 0.0
