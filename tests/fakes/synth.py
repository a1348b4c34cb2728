"""Deterministic test signals: speech-like audio and the noises that must not pass for speech."""

from __future__ import annotations

import numpy as np


def speech_like(seconds: float, rate: int, *, seed: int = 1, level: float = 0.3) -> np.ndarray:
    """Voiced-speech stand-in as float64 in [-1, 1]: a glottal-like harmonic series (f0 gliding
    100–220 Hz), shaped by two moving formants, under a ~4 Hz syllable envelope with short dips."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    f0 = 150 + 50 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)) + 20 * np.sin(2 * np.pi * 2.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    f1 = 600 + 250 * np.sin(2 * np.pi * 1.1 * t)
    f2 = 1700 + 500 * np.sin(2 * np.pi * 0.8 * t + 1.0)
    signal = np.zeros(n)
    for k in range(1, 40):
        freq = k * f0
        gain = np.exp(-(((freq - f1) / 250) ** 2)) + 0.6 * np.exp(-(((freq - f2) / 350) ** 2)) + 0.05 / k
        gain = np.where(freq < rate / 2 - 200, gain, 0.0)
        signal += gain * np.sin(k * phase)
    syllables = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6))
    signal *= syllables
    signal *= level / np.max(np.abs(signal))
    return signal


def white_noise(seconds: float, rate: int, *, level: float = 0.1, seed: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(int(seconds * rate)) * level


def pink_noise(seconds: float, rate: int, *, level: float = 0.1, seed: int = 3) -> np.ndarray:
    n = int(seconds * rate)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / rate)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, n)
    return noise * level / np.std(noise)


def hum(seconds: float, rate: int, *, mains: float = 50.0, level: float = 0.1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(np.sin(2 * np.pi * mains * k * t) / k for k in (1, 2, 3, 5))
    return wave * level / np.max(np.abs(wave))


def to_int16(signal: np.ndarray) -> np.ndarray:
    return np.clip(np.round(signal * 32767), -32768, 32767).astype(np.int16)


def stereo(mono: np.ndarray) -> np.ndarray:
    """Interleave one channel into both (int16 in, int16 out)."""
    return np.repeat(mono, 2)


def frames(pcm: np.ndarray, size: int) -> list[bytes]:
    """Whole frames of ``size`` samples (a trailing partial frame is dropped)."""
    return [pcm[i : i + size].tobytes() for i in range(0, len(pcm) - size + 1, size)]


def spoken_question(seconds: float = 1.6, seed: int = 1) -> np.ndarray:
    """48 kHz stereo int16 speech-like audio for a simulated user to say."""
    return stereo(to_int16(speech_like(seconds, 48_000, seed=seed))).reshape(-1, 2)
