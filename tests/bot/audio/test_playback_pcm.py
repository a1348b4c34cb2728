"""The conversions into FFmpeg's float32 input, run on the pipe thread."""

from __future__ import annotations

import numpy as np

from bot.audio.playback_pcm import clip_float32, int16_to_float32


def test_float32_is_clipped_to_full_scale_and_nan_becomes_silence() -> None:
    values = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -3.0, np.nan, 1e-6, np.inf, -np.inf], dtype="<f4")
    out = np.frombuffer(clip_float32(values.tobytes()), dtype="<f4")
    assert out.tolist() == [0.0, 0.5, -0.5, 1.0, -1.0, 1.0, -1.0, 0.0, np.float32(1e-6), 1.0, -1.0]
    speech = np.linspace(-0.9, 0.9, 2000, dtype="<f4")  # in range: untouched, bit for bit
    assert clip_float32(speech.tobytes()) == speech.tobytes()


def test_int16_becomes_float32_in_minus_one_to_one() -> None:
    out = np.frombuffer(int16_to_float32(np.array([0, 16384, -16384, 32767, -32768], "<i2").tobytes()), "<f4")
    assert out.tolist() == [0.0, 0.5, -0.5, 32767 / 32768, -1.0]
