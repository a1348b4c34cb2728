"""The compact voice reference sent as ``ref_audio`` when no voice can be registered (free plan).

The stored clip is up to 30 s of 24 kHz 16-bit WAV, ~1.4 MB (~1.9 MB as base64): on a 20 Mbit/s
uplink that is ~0.8 s of upload before every sentence's first audio. Voxtral clones from 3-25 s of
reference and accepts MP3, so the reference is the clip's best ``REFERENCE_MAX_S`` of speech as a
mono MP3 at ``MP3_BITRATE``: 15 s -> ~75 KB, ~100 KB as base64, ~40 ms of upload at 20 Mbit/s
(the issue's budget: at most 50 ms more to first audio with a clip). Computed once per clip; pure
CPU (run it in a worker thread), no I/O.
"""

from __future__ import annotations

import io
import wave

import av
import numpy as np

from bot.audio.frames import SAMPLE_WIDTH

REFERENCE_MAX_S = 15.0
MP3_BITRATE = 40_000  # mono speech at 24 kHz (MPEG-2 layer III)
_WINDOW_S = 0.020
_SPEECH_BELOW_PEAK_DB = 35.0  # 20 ms windows this far under the loudest count as pauses
_FADE_S = 0.015  # where the window cuts into sound, fade so the reference has no click


def best_speech_span(samples: np.ndarray, rate: int, *, max_seconds: float = REFERENCE_MAX_S) -> tuple[int, int]:
    """``(start, end)`` sample indexes of the ``max_seconds`` holding the most speech.

    A clip no longer than ``max_seconds`` is used whole. Otherwise every window start (in 20 ms
    steps) is scored by how many of its 20 ms frames are speech (within 35 dB of the clip's
    loudest frame); the earliest best window wins, so the result is deterministic.
    """
    limit = int(max_seconds * rate)
    if samples.size <= limit:
        return 0, int(samples.size)
    step = int(_WINDOW_S * rate)
    count = samples.size // step
    frames = samples[: count * step].astype(np.float64).reshape(count, step)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-9)
    speech = (level >= level.max() - _SPEECH_BELOW_PEAK_DB).astype(np.int64)
    width = limit // step
    sums = np.convolve(speech, np.ones(width, dtype=np.int64), mode="valid")
    start = int(np.argmax(sums)) * step
    return start, start + limit


def compact_reference(wav: bytes, *, max_seconds: float = REFERENCE_MAX_S, bitrate: int = MP3_BITRATE) -> bytes:
    """The clip's best ``max_seconds`` of speech (a mono 16-bit WAV in) as a mono MP3."""
    with wave.open(io.BytesIO(wav), "rb") as reader:
        if reader.getnchannels() != 1 or reader.getsampwidth() != SAMPLE_WIDTH:
            raise ValueError("the reference must be a mono 16-bit WAV (the stored clip format)")
        rate = reader.getframerate()
        samples = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    start, end = best_speech_span(samples, rate, max_seconds=max_seconds)
    span = samples[start:end].astype(np.float32)
    fade = min(int(_FADE_S * rate), span.size // 2)
    if fade and start > 0:
        span[:fade] *= np.linspace(0.0, 1.0, fade, dtype=np.float32)
    if fade and end < samples.size:
        span[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    pcm = np.rint(span).astype(np.int16)
    return _mp3(pcm, rate, bitrate)


def _mp3(pcm: np.ndarray, rate: int, bitrate: int) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout="mono")
        stream.bit_rate = bitrate
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()
