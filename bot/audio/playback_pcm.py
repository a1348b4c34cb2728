"""Speech on its way into FFmpeg's float32 WAV input (``bot.audio.ffmpeg``): pure conversions over
whole-sample ``bytes``, run on the pipe thread (``bot.voice.pipes``) as the bytes go into the pipe.

Not on the event loop: numpy lets go of the GIL in every loop over 500 elements or more (a 62 ms
TTS chunk is 1,500 samples), and at 50 guilds the loop then waited for the GIL again: ``np.clip``
on a TTS chunk cost the loop 56 us a call, ``astype`` 16 us.
"""

from __future__ import annotations

import numpy as np

INT16_SCALE = 1.0 / 32768.0


def clip_float32(pcm: bytes) -> bytes:
    """float32 LE clipped to [-1, 1] (±inf too); NaN becomes silence."""
    samples = np.clip(np.frombuffer(pcm, dtype="<f4"), -1.0, 1.0)
    nan = np.isnan(samples)
    if nan.any():
        samples[nan] = 0.0
    clipped: bytes = samples.tobytes()
    return clipped


def int16_to_float32(pcm: bytes) -> bytes:
    """s16le to float32 LE in [-1, 1)."""
    samples = np.frombuffer(pcm, dtype="<i2").astype("<f4")
    samples *= INT16_SCALE
    converted: bytes = samples.tobytes()
    return converted
