"""Run the benchmarks of issue 5 and print one summary.

    .venv/bin/python -m bench --quick --json   # reduced 1-5, < 5 min; one JSON object on stdout
    .venv/bin/python -m bench --json           # full 1-6; also writes bench/results.json and,
                                               # if matplotlib is installed, docs/benchmarks_*.png

Everything but the final summary goes to stderr. Keys are described in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench import memory, receive_path, scaling, turns

RESULTS = Path(__file__).resolve().parent / "results.json"

QUICK = {"turns": 10, "sequential": 4, "bargein": 6, "receive_seconds": 2.0, "receive_passes": 3,
         "memory_guilds": [1, 10], "scaling": None}
FULL = {"turns": 50, "sequential": 8, "bargein": 10, "receive_seconds": 10.0, "receive_passes": 7,
        "memory_guilds": [1, 10], "scaling": {"levels": [1, 5, 20, 50], "rounds": 2}}


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}


def run(config: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    details: dict[str, Any] = {"machine": machine(), "config": config}
    print("turn latency, sequential baseline, barge-in ...", file=sys.stderr, flush=True)
    details["turns"] = asyncio.run(turns.measure(config["turns"], config["sequential"], config["bargein"]))
    print("receive path ...", file=sys.stderr, flush=True)
    with contextlib.redirect_stdout(sys.stderr):
        details["receive_path"] = receive_path.run(config["receive_seconds"], config["receive_passes"], False)
    print("memory ...", file=sys.stderr, flush=True)
    details["memory"] = [asyncio.run(memory.measure(n)) for n in config["memory_guilds"]]
    if config["scaling"]:
        print("scaling (and 50-guild memory) ...", file=sys.stderr, flush=True)
        scaled = asyncio.run(scaling.measure(config["scaling"]["levels"], config["scaling"]["rounds"]))
        details["memory"].append(scaled["memory"])
        details["scaling"] = scaled["levels"]
        details["scaling_headline"] = scaling.headline(scaled["levels"])
    details["seconds"] = round(time.monotonic() - started, 1)
    return {**headline(details), "details": details}


def headline(details: dict[str, Any]) -> dict[str, Any]:
    streaming, sequential = details["turns"]["streaming"], details["turns"]["sequential"]
    barge = details["turns"]["bargein"]
    mem = sorted(details["memory"], key=lambda m: m["guilds"])
    largest = mem[-1]
    out: dict[str, Any] = {
        "turn_first_audio_p50_ms": streaming["first_audio"]["p50"],
        "turn_first_audio_p95_ms": streaming["first_audio"]["p95"],
        "turn_overhead_p50_ms": streaming["overhead"]["p50"],
        "turn_overhead_p95_ms": streaming["overhead"]["p95"],
        "turn_endpointing_p50_ms": streaming["endpointing"]["p50"],
        # Silence the player put inside a reply (holes in sentences, gaps beyond the speech's own),
        # with the fake TTS at real time +-40 ms jitter; and its price: first TTS audio -> first packet.
        "inserted_silence_ms_per_reply": streaming.get("inserted_silence", {}).get("mean"),
        # A 30 s clip set, same run as turn_first_audio_p50_ms (no clip): spoken by its registered
        # voice id (paid plan), and as its compact reference on a plan that refuses voices.
        "first_audio_with_clip_p50_ms": details["turns"]["with_clip_reference"]["turns"]["first_audio"]["p50"],
        "first_audio_with_registered_voice_p50_ms":
            details["turns"]["with_registered_voice"]["turns"]["first_audio"]["p50"],
        "tts_request_bytes_p50": details["turns"]["with_clip_reference"]["request_bytes"]["p50"],
        "playback_start_after_tts_p50_ms": streaming.get("step_first_packet_sent", {}).get("p50"),
        "first_turn_after_start_overhead_ms": details["turns"]["first_turn_after_start"]["overhead"]["p50"],
        "turn_critical_path_ms": details["turns"]["critical_path_ms"],
        "silence_end_ms": details["turns"]["silence_end_ms"],
        "sequential_first_audio_p50_ms": sequential["first_audio"]["p50"] if sequential else None,
        "sequential_first_audio_p95_ms": sequential["first_audio"]["p95"] if sequential else None,
        "bargein_stop_p50_ms": barge["stop"]["p50"] if barge else None,
        "bargein_stop_p95_ms": barge["stop"]["p95"] if barge else None,
        "bargein_stop_after_min_speech_p50_ms": barge["stop_after_confirmed"]["p50"] if barge else None,
        "speakers_per_core": details["receive_path"]["concurrent_speakers_per_core"],
        "receive_vs_floor": details["receive_path"]["receive_vs_floor"],
        "rss_baseline_mb": mem[0]["rss_idle_mb"],
        "rss_per_voice_guild_mb": largest["per_voice_guild_mb"],
        "rss_per_active_speaker_mb": largest["per_active_speaker_mb"],
        "rss_measured_guilds": [m["guilds"] for m in mem],
    }
    if sequential:
        out["streaming_speedup_first_audio"] = round(
            sequential["first_audio"]["p50"] / streaming["first_audio"]["p50"], 2)
        out["streaming_speedup_after_speech_end"] = round(
            sequential["from_speech_end"]["p50"] / streaming["from_speech_end"]["p50"], 2)
    if "scaling" in details:
        out["scaling_overhead_ms"] = {
            str(level["guilds"]): {k: level["turns"]["overhead"][k] for k in ("p50", "p95")}
            for level in details["scaling"] if "overhead" in level["turns"]
        }
        out |= details["scaling_headline"]  # scaling_50_overhead_p95_ms: issue 15's goal
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced benchmarks 1-5 (< 5 minutes)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--output", type=Path, default=None, help="where the full run writes (bench/results.json)")
    args = parser.parse_args()
    result = run(QUICK if args.quick else FULL)
    if not args.quick:
        output = args.output or RESULTS
        output.write_text(json.dumps(result, indent=1) + "\n")
        try:
            from bench.plot import plot_all  # noqa: PLC0415 - matplotlib is optional, not a bot dependency
        except ImportError:
            print("matplotlib not installed: no plots", file=sys.stderr)
        else:
            plot_all(result)
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps({k: v for k, v in result.items() if k != "details"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
