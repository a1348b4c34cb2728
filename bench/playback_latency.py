"""First PCM written -> first Opus packet readable, through StreamingOpusSource and the bundled FFmpeg.

    .venv/bin/python -m bench.playback_latency [trials]

"warm": FFmpeg spawned 300 ms before the first audio, as SpeechPlayer.begin_reply does while the
model is thinking. "cold": audio fed right after spawning. Each with a first TTS chunk of 40 ms
(the second fed 20 ms later) and of 200 ms. FFmpeg reads 5 ms input blocks and writes each packet
at once (bot/audio/ffmpeg.py), so a chunk's complete 20 ms frames come out without waiting for
the next chunk. This is FFmpeg's part only: when playback starts is the playout policy's call.
"""

from __future__ import annotations

import statistics
import sys
import time

import imageio_ffmpeg
import numpy as np

from bot.voice.opus_source import StreamingOpusSource


def _tone(seconds: float) -> bytes:
    t = np.arange(round(seconds * 24_000)) / 24_000
    return (np.sin(2 * np.pi * 220 * t) * 12_000).astype("<i2").tobytes()


def measure(*, warm: bool, first_chunk_s: float, executable: str) -> float:
    spawned = time.perf_counter()
    source = StreamingOpusSource(executable=executable, clock=time.perf_counter)
    try:
        if warm:
            time.sleep(0.3)
        pcm = _tone(1.0)
        cut = round(first_chunk_s * 24_000) * 2
        source.feed(pcm[:cut])
        fed_at = time.perf_counter()
        if first_chunk_s < 0.1:
            time.sleep(0.02)
            source.feed(pcm[cut:])
        while source.first_packet_ready_at is None:
            time.sleep(0.0002)
        start = fed_at if warm else spawned
        return (source.first_packet_ready_at - start) * 1000
    finally:
        source.cleanup()


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    executable = imageio_ffmpeg.get_ffmpeg_exe()
    for warm in (True, False):
        for first in (0.2, 0.04):
            values = sorted(measure(warm=warm, first_chunk_s=first, executable=executable) for _ in range(trials))
            p95 = values[max(0, -(-95 * len(values) // 100) - 1)]
            label = "warm (from first PCM)" if warm else "cold (from spawn)"
            print(
                f"{label:24} first chunk {first * 1000:3.0f} ms: "
                f"median {statistics.median(values):6.1f} ms, p95 {p95:6.1f} ms (n={trials})"
            )


if __name__ == "__main__":
    main()
