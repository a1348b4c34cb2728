"""FFmpeg's CPU per reply and its latency when the TTS sends Ogg Opus and FFmpeg copies the
packets, against the PCM path that encodes (issue 15), on the same speech.

    .venv/bin/python -m bench.copy_cost [--rounds 3] [--speed 4] [--json]

Speech: ``bench.encoder_cost.speech()`` (recorded voices at 24 kHz with "air", and synthetic
speech), encoded as the TTS would send it (Ogg Opus, mono 24 kHz, libopus via PyAV: 20 ms frames,
or 60 ms for the re-encode fallback). Variants, one FFmpeg per reply, all of a variant's at once,
fed in 62.5 ms pieces ``--speed`` times faster than real time:

- ``pcm``: float32 WAV in, libopus out (``ffmpeg_args``, today's path with TTS_FORMAT=pcm);
- ``copy``: Ogg Opus (20 ms) in, ``-c:a copy`` to NUT (``copy_args``);
- ``reencode_60ms``: Ogg Opus (60 ms) in, decoded and encoded as pcm is (``source="opus"``).

Per variant (median over rounds): ``ms_per_reply`` (FFmpeg user + system CPU, ``os.wait4``) and,
for the Ogg variants, the latency from the piece holding a packet written to that packet parsed
out of FFmpeg's NUT (p50 / p95 / max, ms). Then ``first_packet_ms``: a reply's FFmpeg already
running, the time from the first speech written to its first packet out, for copy, for pcm, and
for a reply whose first packet is 60 ms (the player replaces the copying FFmpeg it started with
a re-encoding one: the first-audio cost of a wrong guess, paid once per guild).
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time

import numpy as np

from bench.encoder_cost import CHUNK_BYTES, RATE, all_at_once, run_ffmpeg, run_paced, speech
from bot.audio.ffmpeg import ffmpeg_args, ffmpeg_executable
from bot.audio.frames import F32LE
from bot.audio.ogg_opus import OggOpusReader
from bot.voice.ogg_source import OggOpusSource
from bot.voice.opus_source import StreamingOpusSource
from bot.voice.spawn import at_once
from tests.fakes.mistral.audio import encode_speech, opus_pieces

PIECE_S = CHUNK_BYTES / 4 / RATE  # 62.5 ms, as the TTS streams


def run_ogg(args: list[str], ogg: bytes, speed: float) -> tuple[list[float], float]:
    """Feed ``ogg`` in 62.5 ms pieces; (latency of each packet in s, FFmpeg's CPU seconds)."""
    pieces = opus_pieces(ogg, PIECE_S)
    reader = OggOpusReader()
    # Which piece completes each audio packet: its latency counts from that piece's write.
    owner = [i for i, piece in enumerate(pieces) for _ in range(round(reader.feed(piece).seconds / 0.020))]
    paced = run_paced(args, [(index * PIECE_S, piece) for index, piece in enumerate(pieces)], speed)
    latencies = [at - paced.written[owner[i]] for i, at in enumerate(paced.arrivals[:len(owner)])]
    return latencies, paced.cpu_s


def first_packet_ms(kind: str, samples: np.ndarray, executable: str) -> float:
    """A started FFmpeg (as at ``begin_reply``), then the first 62.5 ms of speech: ms to packet."""
    ready = threading.Event()
    common = {"executable": executable, "spawn": at_once, "on_first_packet": lambda _at: ready.set()}
    source = StreamingOpusSource(**common) if kind == "pcm" else OggOpusSource(copy=True, **common)
    ogg = encode_speech(samples, "opus", opus_frame_ms=20 if kind == "copy" else 60)
    first = OggOpusReader().feed(opus_pieces(ogg, PIECE_S)[0])
    time.sleep(0.3)  # FFmpeg has started and waits for input
    start = time.perf_counter()
    if kind == "pcm":
        source.feed(samples[: CHUNK_BYTES // 4].astype("<f4").tobytes(), F32LE)
    else:
        if kind == "swap":  # what SpeechPlayer._source_for does on a 60 ms first packet
            source.cleanup()
            source = OggOpusSource(copy=False, **common)
        assert isinstance(source, OggOpusSource)
        source.feed_pages(first)
    ready.wait(5)
    elapsed = (time.perf_counter() - start) * 1000
    source.cleanup()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--speed", type=float, default=4.0)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    executable = ffmpeg_executable()
    replies = [samples.astype(np.float32) for _name, samples in speech()]
    pcm = [r.astype("<f4").tobytes() for r in replies]
    ogg20 = [encode_speech(r, "opus", opus_frame_ms=20) for r in replies]
    ogg60 = [encode_speech(r, "opus", opus_frame_ms=60) for r in replies]
    cpu: dict[str, list[float]] = {"pcm": [], "copy": [], "reencode_60ms": []}
    latency: dict[str, list[float]] = {"copy": [], "reencode_60ms": []}
    for _ in range(options.rounds):
        runs = all_at_once(lambda p: run_ffmpeg(ffmpeg_args(executable), p, options.speed), pcm)
        cpu["pcm"].append(sum(c for _, c in runs) / len(runs))
        for name, source, oggs in (("copy", "copy", ogg20), ("reencode_60ms", "opus", ogg60)):
            args = ffmpeg_args(executable, source=source)
            results = all_at_once(lambda ogg, a=args: run_ogg(a, ogg, options.speed), oggs)
            cpu[name].append(sum(c for _, c in results) / len(results))
            latency[name] += [x for lat, _ in results for x in lat]
    mean_s = sum(map(len, replies)) / len(replies) / RATE
    out: dict[str, object] = {"replies": len(replies), "mean_reply_s": round(mean_s, 2)}
    for name, values in cpu.items():
        row: dict[str, float] = {"ms_per_reply": round(statistics.median(values) * 1000, 1)}
        if name in latency:
            lat = sorted(latency[name])
            row |= {"latency_p50_ms": round(lat[len(lat) // 2] * 1000, 2),
                    "latency_p95_ms": round(lat[int(len(lat) * 0.95)] * 1000, 2),
                    "latency_max_ms": round(lat[-1] * 1000, 2)}
        out[name] = row
    first = replies[0]
    out["first_packet_ms"] = {
        kind: round(statistics.median(first_packet_ms(kind, first, executable) for _ in range(5)), 1)
        for kind in ("pcm", "copy", "swap")
    }
    print(json.dumps(out, indent=1) if options.json else out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
