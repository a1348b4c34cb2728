"""The one WAV writer: int16 PCM in a RIFF/WAVE container (stdlib ``wave``, no I/O)."""

from __future__ import annotations

import io
import wave

from bot.audio.frames import SAMPLE_WIDTH


def pcm16_to_wav(pcm: bytes, *, sample_rate: int, channels: int = 1) -> bytes:
    """Wrap int16 little-endian PCM (interleaved when ``channels`` > 1) in a WAV container."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(SAMPLE_WIDTH)
        writer.setframerate(sample_rate)
        writer.writeframes(pcm)
    return buffer.getvalue()
