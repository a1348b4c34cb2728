"""Audio formats at the boundaries of the receive path, and the frame type that crosses them.

Discord sends 48 kHz stereo Opus in 20 ms packets; speech-to-text wants 16 kHz mono; speech
synthesis answers 24 kHz mono. Everything
between is signed 16-bit little-endian PCM in plain ``bytes``, interleaved when stereo, except
speech on its way to the player: Voxtral TTS sends float32 and FFmpeg reads float32, so that audio
stays float32 (``F32LE``) instead of being converted to int16 and back for every chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

DISCORD_SAMPLE_RATE = 48_000
DISCORD_CHANNELS = 2
FRAME_DURATION_S = 0.020
FRAME_SAMPLES = 960  # per channel, 20 ms at 48 kHz
STT_SAMPLE_RATE = 16_000
STT_CHANNELS = 1
TTS_SAMPLE_RATE = 24_000  # Voxtral TTS output (mono) and the stored voice clip
TTS_CHANNELS = 1
SAMPLE_WIDTH = 2  # bytes per int16 sample
SampleFormat = Literal["s16le", "f32le"]
S16LE: SampleFormat = "s16le"
F32LE: SampleFormat = "f32le"  # TTS speech to the player (float32, may exceed [-1, 1]: the player clips)
SAMPLE_WIDTHS: dict[SampleFormat, int] = {S16LE: SAMPLE_WIDTH, F32LE: 4}
# A 20 ms Opus frame of silence: what Discord sends (never DAVE-encrypted) when a speaker stops,
# and what discord.py's player sends when playback ends.
OPUS_SILENCE = b"\xf8\xff\xfe"

_LOUD_RMS = 200.0  # int16: speech (e.g. resuming after a server turn.end), not a leftover quiet frame

# Byte sizes of one 20 ms frame in each format, used to slice and preallocate.
DISCORD_FRAME_BYTES = FRAME_SAMPLES * DISCORD_CHANNELS * SAMPLE_WIDTH  # 3840
STT_FRAME_SAMPLES = STT_SAMPLE_RATE * 20 // 1000  # 320
STT_FRAME_BYTES = STT_FRAME_SAMPLES * STT_CHANNELS * SAMPLE_WIDTH  # 640


def pcm_duration(nbytes: int, sample_rate: int, channels: int) -> float:
    """Seconds of audio in ``nbytes`` of int16 PCM."""
    return nbytes / (sample_rate * channels * SAMPLE_WIDTH)


@dataclass(frozen=True, slots=True)
class PcmFrame:
    """A run of PCM (int16 unless ``sample_format`` says float32) with the format needed to
    interpret it.

    Built once per boundary crossing (e.g. one per utterance handed to speech-to-text), not per
    packet: the per-packet hot path passes bare ``bytes``.
    """

    pcm: bytes
    sample_rate: int
    channels: int
    sample_format: SampleFormat = S16LE

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.channels <= 0:
            raise ValueError(f"bad PCM format: {self.sample_rate} Hz, {self.channels} channels")
        if len(self.pcm) % (SAMPLE_WIDTHS[self.sample_format] * self.channels):
            raise ValueError(
                f"{len(self.pcm)} bytes is not a whole number of {self.channels}-channel {self.sample_format} samples"
            )

    @property
    def samples(self) -> int:
        """Samples per channel."""
        return len(self.pcm) // (SAMPLE_WIDTHS[self.sample_format] * self.channels)

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return self.samples / self.sample_rate


def loud(pcm: bytes) -> bool:
    """16-bit PCM louder than a leftover quiet frame."""
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype=np.int16).astype(np.float32)
    return samples.size > 0 and float(np.sqrt(np.mean(samples * samples))) > _LOUD_RMS
