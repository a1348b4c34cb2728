"""FFmpeg's CPU per reply and what each encoder setting costs in quality (issue 15).

    .venv/bin/python -m bench.encoder_cost [--rounds 3] [--speed 4] [--variants NAME ...] [--json]

Each variant is the player's command line (``bot.audio.ffmpeg.ffmpeg_args``) with one or more
options changed (``VARIANTS``). Per round, every variant encodes the whole speech set, one FFmpeg
per clip (a reply), all of a variant's FFmpegs at once, each fed as the player feeds it: the WAV
header, then the TTS's 62.5 ms float32 chunks, ``--speed`` times faster than real time (FFmpeg
still sleeps between chunks, so it wakes as often per chunk as at real time), then EOF. Variants
take turns within a round, so a busy neighbour slows all of them alike. CPU is each FFmpeg's own
user + system time (``os.wait4``); per variant the median over rounds of

- ``start_ms``: an FFmpeg given only the header and EOF (start, graph set-up, exit);
- ``ms_per_speech_s``: (CPU of all replies - start x replies) / seconds of speech;
- ``ms_per_reply``: CPU of all replies / replies (the set's replies average ``REPLY_S`` seconds).

Speech: the VAD corpus' recordings (espeak-ng voices and Debian alsa-utils' human voices, 16 kHz)
upsampled to the TTS's 24 kHz, with "air" added at 8-12 kHz (band-passed noise following the
speech envelope, 20 dB under it: sibilance the real TTS has and the recordings lost), and the
synthetic voiced speech of ``tests.fakes.synth``. Quality, from the first round's packets decoded
as Discord decodes them (48 kHz stereo; the channels, which differ by ~-46 dB, averaged and taken
to 24 kHz by a brick-wall FFT filter) and aligned to the source by cross-correlation (libopus'
look-ahead delays the output), per clip then averaged:

- ``snr_db``: against the source, 0-12 kHz;
- ``lsd_*_db``: log-spectral distance against the source (dB, 32 ms Hann frames within 40 dB of
  the clip's loudest, each frame's spectra floored 60 dB under its peak), 0-8 kHz and 8-12 kHz;
- ``snr_vs_current_db``: against what today's settings decode to (how different, not how good);
- ``delay_ms``: where the decoded speech lies against the source (> 0: late; the codec's
  look-ahead, which Discord's decoder does not skip).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, cast

import numpy as np
import soxr

from bot.audio.ffmpeg import ffmpeg_args, ffmpeg_executable, wav_stream_header
from bot.audio.opus import OpusDecoder
from bot.voice.nut import NutParser
from tests.fakes.synth import speech_like
from tests.fakes.vad_corpus import speech_clips

T = TypeVar("T")
R = TypeVar("R")

RATE = 24_000
CHUNK_BYTES = 6000  # the fake Mistral's TTS chunk: 62.5 ms of float32 at 24 kHz

Edit = Callable[[list[str]], list[str]]


def _output_option(name: str, value: str) -> Edit:
    """Set an option of the output (the encoder): replaced where present, else put before it."""

    def edit(args: list[str]) -> list[str]:
        out = list(args)
        flag = f"-{name}"
        if flag in out[out.index("-map") :]:
            out[out.index(flag, out.index("-map")) + 1] = value
            return out
        at = len(out) - out[::-1].index("pipe:") - 1  # the output url
        return [*out[:at], flag, value, *out[at:]]

    return edit


def _input_option(name: str, value: str) -> Edit:
    def edit(args: list[str]) -> list[str]:
        at = args.index("-i")
        return [*args[:at], f"-{name}", value, *args[at:]]

    return edit


def _replace(flag: str, value: str) -> Edit:
    def edit(args: list[str]) -> list[str]:
        out = list(args)
        out[out.index(flag) + 1] = value
        return out

    return edit


def _global(*flags: str) -> Edit:
    return lambda args: [*args, *flags]


def _all(*edits: Edit) -> Edit:
    def edit(args: list[str]) -> list[str]:
        for one in edits:
            args = one(args)
        return args

    return edit


_THREADS_1 = _all(
    _input_option("threads", "1"), _output_option("threads", "1"), _global("-filter_complex_threads", "1")
)

VARIANTS: dict[str, Edit] = {
    "current": _all(),
    # The command line before issue 15's encoder pass: 5 ms input blocks, "-fflags nobuffer" (which
    # dropped the block the probe read: the reply's first 5 ms), libopus' default complexity 10.
    "before": _all(
        _replace("-max_size", "480"), _input_option("fflags", "nobuffer"), _output_option("compression_level", "10")
    ),
    "block5": _replace("-max_size", "480"),
    "cl10": _output_option("compression_level", "10"),
    "cl8": _output_option("compression_level", "8"),
    "cl7": _output_option("compression_level", "7"),
    "cl6": _output_option("compression_level", "6"),
    "cl4": _output_option("compression_level", "4"),
    "cl3": _output_option("compression_level", "3"),
    "fec0": _output_option("fec", "0"),
    "threads1": _THREADS_1,
    "nostats": _global("-nostats"),
    # Yardsticks for the quality columns: what the current settings lose with 8 or 16 kb/s less.
    "56k": _output_option("b:a", "56k"),
    "48k": _output_option("b:a", "48k"),
}


def _air(speech: np.ndarray, seed: int) -> np.ndarray:
    """8-12 kHz noise following the speech's 10 ms envelope, 20 dB under the speech."""
    noise = np.random.default_rng(seed).standard_normal(speech.size)
    spectrum = np.fft.rfft(noise)
    spectrum[np.fft.rfftfreq(noise.size, 1 / RATE) < 8000] = 0
    band = np.fft.irfft(spectrum, noise.size)
    hop = RATE // 100
    envelope = np.sqrt(np.convolve(speech**2, np.ones(hop) / hop, "same"))
    return band / (np.std(band) or 1.0) * envelope * 0.1


def speech() -> list[tuple[str, np.ndarray]]:
    """(name, float 24 kHz mono in [-1, 1]) replies."""
    out = []
    for i, clip in enumerate(c for c in speech_clips() if c.kind == "speech"):
        x = soxr.resample(clip.pcm.astype(np.float64) / 32768.0, 16_000, RATE)
        out.append((clip.name + "+air", np.clip(x + _air(x, i), -1.0, 1.0)))
    out.append(("synth_speech_like", speech_like(4.0, RATE, level=0.5)))
    return out


@dataclass(frozen=True)
class Paced:
    """What one FFmpeg made of input written on a schedule."""

    packets: list[bytes]  # Opus packets parsed out of its NUT output
    arrivals: list[float]  # perf_counter() when each packet was parsed
    written: list[float]  # perf_counter() when each piece was written
    cpu_s: float  # FFmpeg's user + system CPU (os.wait4)


def run_paced(args: list[str], pieces: list[tuple[float, bytes]], speed: float) -> Paced:
    """Run FFmpeg with each ``(due second, bytes)`` piece written to its stdin when due (``speed``
    times faster than real time), from a thread, while its NUT output is parsed as it comes."""
    process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdin is not None and process.stdout is not None
    stdin, written = process.stdin, [0.0] * len(pieces)

    def feed() -> None:
        start = time.perf_counter()
        for index, (due, piece) in enumerate(pieces):
            time.sleep(max(0.0, start + due / speed - time.perf_counter()))
            written[index] = time.perf_counter()
            stdin.write(piece)
            stdin.flush()
        stdin.close()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    parser, packets, arrivals = NutParser(), [], []
    while data := process.stdout.read1(65536):
        now = time.perf_counter()
        parsed = parser.feed(data)
        packets += parsed
        arrivals += [now] * len(parsed)
    feeder.join()
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"FFmpeg exited {process.returncode}: {' '.join(args)}")
    return Paced(packets, arrivals, written, usage.ru_utime + usage.ru_stime)


def run_ffmpeg(args: list[str], pcm: bytes, speed: float) -> tuple[list[bytes], float]:
    """Feed ``pcm`` (float32) as the player does; (Opus packets, FFmpeg's CPU seconds)."""
    chunks = [(index * CHUNK_BYTES / 4 / RATE, pcm[offset : offset + CHUNK_BYTES])
              for index, offset in enumerate(range(0, len(pcm), CHUNK_BYTES))]
    paced = run_paced(args, [(0.0, wav_stream_header()), *chunks], speed)
    return paced.packets, paced.cpu_s


def all_at_once(job: Callable[[T], R], items: list[T]) -> list[R]:
    """``job`` of every item, each in its own thread, all at once (one FFmpeg per reply)."""
    results: list[R | None] = [None] * len(items)

    def one(index: int) -> None:
        results[index] = job(items[index])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(items))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return cast("list[R]", results)  # every thread has filled its slot


def run_all(args: list[str], replies: list[bytes], speed: float) -> list[tuple[list[bytes], float]]:
    """One FFmpeg per reply, all at once."""
    return all_at_once(lambda reply: run_ffmpeg(args, reply, speed), replies)


def decode(packets: list[bytes]) -> np.ndarray:
    """As Discord decodes (48 kHz stereo), the channels averaged, brick-walled to 24 kHz."""
    decoder = OpusDecoder()
    pcm = np.frombuffer(b"".join(decoder.decode(p) for p in packets), "<i2").reshape(-1, 2)
    x = pcm.astype(np.float64).mean(axis=1) / 32768.0
    n = x.size - x.size % 2
    return np.fft.irfft(np.fft.rfft(x[:n])[: n // 4 + 1], n // 2) / 2


def align(ref: np.ndarray, x: np.ndarray, max_lag: int = 600) -> tuple[np.ndarray, np.ndarray, int]:
    """Shift ``x`` by the lag (within ±max_lag samples) that best matches ``ref``; both trimmed
    to the overlap, and the lag (> 0: ``x`` is late)."""
    n = min(ref.size, x.size) - 2 * max_lag
    core = ref[max_lag : max_lag + n]
    size = 1 << (x.size + n).bit_length()
    correlation = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(core, size)), size)
    k = int(np.argmax(correlation[: 2 * max_lag + 1]))
    return core, x[k : k + n], k - max_lag


def snr_db(ref: np.ndarray, x: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref**2) / (np.sum((ref - x) ** 2) + 1e-12)))


def _power(x: np.ndarray) -> np.ndarray:
    n, hop = 768, 384
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[::hop] * np.hanning(n)
    return np.abs(np.fft.rfft(frames, axis=1)) ** 2


def lsd_db(ref: np.ndarray, x: np.ndarray, band: tuple[float, float]) -> float:
    pr, px = _power(ref), _power(x)
    # Each frame's spectra floored 60 dB under the source frame's peak: differences down in the
    # noise between harmonics, which nobody hears, would otherwise dominate the distance.
    floor = pr.max(axis=1, keepdims=True) * 1e-6
    pr, px = np.maximum(pr, floor), np.maximum(px, floor)
    freqs = np.fft.rfftfreq(768, 1 / RATE)
    sel = (freqs >= band[0]) & (freqs < band[1])
    energy = pr.sum(axis=1)
    active = energy > energy.max() * 1e-4
    d = 10 * np.log10(pr[active][:, sel]) - 10 * np.log10(px[active][:, sel])
    return float(np.mean(np.sqrt(np.mean(d**2, axis=1))))


def quality(sources: list[np.ndarray], decoded: list[np.ndarray], current: list[np.ndarray]) -> dict[str, float]:
    rows = []
    for src, out, ref_out in zip(sources, decoded, current, strict=True):
        s, x, lag = align(src, out)
        c, y, _ = align(ref_out, out)
        rows.append((snr_db(s, x), lsd_db(s, x, (0, 8000)), lsd_db(s, x, (8000, 12001)), snr_db(c, y), lag))
    snr, lsd_lo, lsd_hi, vs, lag = (float(np.mean(col)) for col in zip(*rows, strict=True))
    return {"snr_db": round(snr, 2), "snr_worst_db": round(min(r[0] for r in rows), 2),
            "lsd_0_8k_db": round(lsd_lo, 3), "lsd_8_12k_db": round(lsd_hi, 3), "snr_vs_current_db": round(vs, 1),
            "delay_ms": round(1000 * lag / RATE, 2)}


def study(names: list[str], rounds: int, speed: float) -> dict[str, dict[str, float]]:
    executable = ffmpeg_executable()
    clips = speech()
    replies = [x.astype("<f4").tobytes() for _, x in clips]
    seconds = sum(x.size for _, x in clips) / RATE
    base = ffmpeg_args(executable)
    cpu: dict[str, list[float]] = {n: [] for n in names}
    start: dict[str, list[float]] = {n: [] for n in names}
    packets: dict[str, list[list[bytes]]] = {}
    for round_ in range(rounds):
        for name in names:
            args = VARIANTS[name](base)
            start[name].append(statistics.median(c for _, c in run_all(args, [b""] * 5, speed)))
            results = run_all(args, replies, speed)
            cpu[name].append(sum(c for _, c in results))
            packets.setdefault(name, [p for p, _ in results])
        print(f"round {round_ + 1}/{rounds} done", file=sys.stderr)
    sources = [x for _, x in clips]
    current = [decode(p) for p in packets["current"]]
    out = {}
    for name in names:
        total, begin = statistics.median(cpu[name]), statistics.median(start[name])
        out[name] = {
            "start_ms": round(1000 * begin, 1),
            "ms_per_speech_s": round(1000 * (total - begin * len(replies)) / seconds, 2),
            "ms_per_reply": round(1000 * total / len(replies), 1),
            "cpu_rounds_s": [round(c, 3) for c in cpu[name]],
            **quality(sources, [decode(p) for p in packets[name]], current),
        }
    out["_set"] = {"replies": len(replies), "speech_s": round(seconds, 1), "REPLY_S": round(seconds / len(replies), 2)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--speed", type=float, default=4.0, help="times real time the chunks are fed at")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    names = ["current", *[n for n in args.variants if n != "current"]]
    results = study(names, args.rounds, args.speed)
    s = results["_set"]
    print(f"{s['replies']} replies, {s['speech_s']} s of speech (mean reply {s['REPLY_S']} s), "
          f"{args.rounds} rounds (medians), fed at {args.speed:g}x real time")
    print(f"{'variant':16s} {'start ms':>8s} {'ms/speech s':>11s} {'ms/reply':>8s} {'SNR dB':>7s} {'worst':>6s} "
          f"{'LSD 0-8k':>8s} {'LSD 8-12k':>9s} {'SNR vs current':>14s} {'delay ms':>8s}")
    for name in names:
        r = results[name]
        print(f"{name:16s} {r['start_ms']:8.1f} {r['ms_per_speech_s']:11.2f} {r['ms_per_reply']:8.1f} "
              f"{r['snr_db']:7.2f} {r['snr_worst_db']:6.2f} {r['lsd_0_8k_db']:8.3f} {r['lsd_8_12k_db']:9.3f} "
              f"{r['snr_vs_current_db']:14.1f} {r['delay_ms']:8.2f}")
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
