"""Markdown tables for docs/benchmarks.md from bench/results.json.

    .venv/bin/python -m bench.report [bench/results.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROWS = [
    ("first_audio", "**user's last packet → first reply packet at the voice server**"),
    ("endpointing", "  end-of-speech wait (last packet → bot's `speech_end`)"),
    ("step_transcript_final", "  `speech_end` → `transcript_final`"),
    ("step_first_token", "  → `first_token`"),
    ("step_first_sentence", "  → `first_sentence`"),
    ("step_first_tts_audio", "  → `first_tts_audio`"),
    ("step_first_packet_sent", "  → `first_packet_sent` (FFmpeg, player)"),
    ("step_first_packet_received", "  → first packet received by the fake (UDP, DAVE)"),
    ("from_speech_end", "`speech_end` → first packet received"),
    ("overhead", "**overhead** = first audio − 400 ms silence_end − critical path"),
    ("overhead_after_speech_end", "overhead counted from `speech_end` (endpointing excess left out)"),
]


def turn_table(streaming: dict[str, Any], sequential: dict[str, Any]) -> str:
    lines = ["| ms | streaming p50 | p95 | sequential p50 | p95 |", "|---|---|---|---|---|"]
    for key, label in ROWS:
        a, b = streaming.get(key), sequential.get(key)
        if a is None and b is None:
            continue
        cells = [f"{a['p50']:.0f} | {a['p95']:.0f}" if a else "– | –",
                 f"{b['p50']:.0f} | {b['p95']:.0f}" if b else "– | –"]
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def scaling_table(levels: list[dict[str, Any]]) -> str:
    lines = ["| talking guilds | turns answered | first audio p50 / p95 | overhead p50 / p95 | endpointing p95 | "
             "→ first_token p95 | bot loop lag p95 / max | CPU cores: bot / FFmpeg / fakes | "
             "bot waits for a core | machine busy |", "|---|---|---|---|---|---|---|---|---|---|"]
    for level in levels:
        t = level["turns"]
        first, over = t["first_audio"], t["overhead"]
        lines.append(
            f"| {level['guilds']} | {first['n']} of {level.get('turns_asked', first['n'])}"
            f" | {first['p50']:.0f} / {first['p95']:.0f}"
            f" | {over['p50']:.0f} / {over['p95']:.0f} | {t['endpointing']['p95']:.0f}"
            f" | {t['step_first_token']['p95']:.0f} | {_lag(level)}"
            f" | {level['bot_cpu_cores']} / {level.get('ffmpeg_cpu_cores', '–')} / {level.get('fakes_cpu_cores', '–')}"
            f" | {_fraction(level.get('bot_main_thread_runqueue_fraction'))}"
            f" | {level['machine_busy_fraction']:.0%} |")
    return "\n".join(lines)


def _lag(level: dict[str, Any]) -> str:
    lag = level.get("bot_loop_lag_ms")
    return f"{lag['p95']:.0f} / {lag['max']:.0f} ms" if lag else "–"


def _fraction(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def memory_table(memory: list[dict[str, Any]]) -> str:
    lines = ["| guilds | idle RSS | after /join in all | after one turn each | peak | per voice guild | "
             "per active speaker | all joins took |", "|---|---|---|---|---|---|---|---|"]
    for m in sorted(memory, key=lambda m: m["guilds"]):
        lines.append(f"| {m['guilds']} | {m['rss_idle_mb']} MB | {m['rss_voice_mb']} MB | {m['rss_active_mb']} MB | "
                     f"{m['rss_peak_during_turns_mb']} MB | {m['per_voice_guild_mb']:.2f} MB | "
                     f"{m['per_active_speaker_mb']:.2f} MB | {m['join_seconds_total']} s |")
    return "\n".join(lines)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "results.json"
    result = json.loads(path.read_text())
    details = result["details"]
    print(turn_table(details["turns"]["streaming"], details["turns"]["sequential"]))
    print()
    barge = details["turns"]["bargein"]
    print("| barge-in, ms | p50 | p95 | n |\n|---|---|---|---|")
    for key in ("stop", "stop_after_confirmed", "silence_tail"):
        print(f"| {key} | {barge[key]['p50']:.0f} | {barge[key]['p95']:.0f} | {barge[key]['n']} |")
    print()
    print(memory_table(details["memory"]))
    if "scaling" in details:
        print()
        print(scaling_table(details["scaling"]))
    print()
    print(json.dumps({k: v for k, v in result.items() if k != "details"}, indent=1))


if __name__ == "__main__":
    main()
