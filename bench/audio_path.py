"""Per-20-ms-frame cost of the receive path's audio stages, against /work/shared/PERF_FLOOR.md.

    .venv/bin/python bench/audio_path.py [--frames 250] [--passes 7]

Encodes a few seconds of synthetic speech at ~64 kbit/s (like a Discord speaker), then times
OpusDecoder.decode, DownmixResampler.process (HQ and VHQ) and SpectralVad.is_speech per frame:
median and best of several passes, time.perf_counter_ns. Not a test: numbers vary by machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from bot.audio.frames import FRAME_SAMPLES, STT_FRAME_SAMPLES
from bot.audio.opus import OpusDecoder, OpusEncoder
from bot.audio.resample import DownmixResampler
from bot.audio.vad import SpectralVad

FLOOR_US = {"opus decode 48k stereo": 43.0, "downmix + resample HQ": 16.0}


def speech(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    f0 = 150 + 50 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 30)) * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t))
    return (x / np.abs(x).max() * 0.3 * 32767).astype(np.int16)


def per_frame_us(run: Callable[[], int], passes: int) -> tuple[float, float]:
    samples = []
    for _ in range(passes):
        start = time.perf_counter_ns()
        count = run()
        samples.append((time.perf_counter_ns() - start) / count / 1000)
    return statistics.median(samples), min(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--passes", type=int, default=7)
    args = parser.parse_args()

    mono = speech(args.frames * 0.02, 48_000)
    stereo = np.repeat(mono, 2)
    pcm_frames = [
        stereo[i : i + 2 * FRAME_SAMPLES].tobytes() for i in range(0, len(stereo), 2 * FRAME_SAMPLES)
    ]
    with OpusEncoder(application="voip", bitrate=64_000) as encoder:
        packets = [encoder.encode(f) for f in pcm_frames]
    print(
        f"{len(packets)} frames, mean packet {np.mean([len(p) for p in packets]):.0f} bytes, "
        f"{args.passes} passes\n"
    )

    results: dict[str, tuple[float, float]] = {}

    def decode() -> int:
        with OpusDecoder() as decoder:
            for packet in packets:
                decoder.decode(packet)
        return len(packets)

    results["opus decode 48k stereo"] = per_frame_us(decode, args.passes)

    for quality in ("HQ", "VHQ"):

        def resample(quality: str = quality) -> int:
            resampler = DownmixResampler(quality=quality)  # type: ignore[arg-type]
            for frame in pcm_frames:
                resampler.process(frame)
            return len(pcm_frames)

        results[f"downmix + resample {quality}"] = per_frame_us(resample, args.passes)

    resampler = DownmixResampler()
    mono16 = b"".join(resampler.process(f) for f in pcm_frames) + resampler.flush()
    vad_frames = [mono16[i : i + 2 * STT_FRAME_SAMPLES] for i in range(0, len(mono16) - 639, 640)]

    def vad() -> int:
        detector = SpectralVad()
        for frame in vad_frames:
            detector.is_speech(frame)
        return len(vad_frames)

    results["SpectralVad.is_speech"] = per_frame_us(vad, args.passes)

    print(f"{'stage':28s} {'median µs':>10s} {'best µs':>9s} {'floor µs':>9s}")
    for name, (median, best) in results.items():
        floor = FLOOR_US.get(name)
        print(f"{name:28s} {median:10.1f} {best:9.1f} {floor if floor else '':>9}")
    total = results["opus decode 48k stereo"][0] + results["downmix + resample HQ"][0]
    print(
        f"\ndecode + downmix/resample (median): {total:.1f} µs/frame "
        f"(floor {sum(FLOOR_US.values()):.0f}); with VAD: {total + results['SpectralVad.is_speech'][0]:.1f}"
    )


if __name__ == "__main__":
    main()
