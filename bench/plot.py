"""Plots for docs/benchmarks.md from bench/results.json (needs matplotlib, not a bot dependency).

    .venv/bin/python -m bench.plot [bench/results.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

DOCS = Path(__file__).resolve().parents[1] / "docs"
STEPS = [
    ("endpointing", "end-of-speech wait (silence_end 400 ms)", "#bbbbbb"),
    ("step_transcript_final", "STT final", "#4c72b0"),
    ("step_first_token", "chat first token", "#55a868"),
    ("step_first_sentence", "first sentence", "#8fd18f"),
    ("step_first_tts_audio", "TTS first audio", "#c44e52"),
    ("step_first_packet_sent", "FFmpeg → first packet sent", "#dd8452"),
    ("step_first_packet_received", "wire (UDP, DAVE)", "#8172b2"),
]


def plot_turn(result: dict[str, Any], path: Path) -> None:
    turns = result["details"]["turns"]
    rows = [("streaming (bot)", turns["streaming"]), ("sequential baseline", turns["sequential"])]
    fig, ax = plt.subplots(figsize=(10, 3.2))
    for y, (_label, data) in enumerate(rows):
        left = 0.0
        for key, name, colour in STEPS:
            if key not in data:
                continue
            width = data[key]["p50"]
            ax.barh(y, width, left=left, color=colour, edgecolor="white", label=name if y == 0 else None)
            if width > 120:
                ax.text(left + width / 2, y, f"{width:.0f}", ha="center", va="center", fontsize=8)
            left += width
        ax.text(left + 40, y, f"{data['first_audio']['p50']:.0f} ms (p95 {data['first_audio']['p95']:.0f})",
                va="center", fontsize=9)
    ax.set_yticks(range(len(rows)), [label for label, _ in rows])
    ax.invert_yaxis()
    ax.set_xlabel("ms from the user's last packet to the first reply packet at the voice server (medians per stage)")
    ax.set_title(f"Turn latency per stage, injected critical path {turns['critical_path_ms']:.0f} ms "
                 f"(streaming overhead p50 {turns['streaming']['overhead']['p50']:.0f} ms)")
    ax.set_xlim(0, max(r[1]["first_audio"]["p95"] for r in rows) * 1.25)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=4, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scaling(result: dict[str, Any], path: Path) -> None:
    levels = result["details"].get("scaling")
    if not levels:
        return
    guilds = [level["guilds"] for level in levels]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for key, style in (("p50", "o-"), ("p95", "s--")):
        ax.plot(guilds, [level["turns"]["overhead"][key] for level in levels], style, label=f"overhead {key}")
    ax.set_xscale("log")
    ax.set_xticks(guilds, [str(g) for g in guilds])
    ax.set_xlabel("guilds talking at the same time (2-core machine, fakes included)")
    ax.set_ylabel("ms above the injected critical path")
    ax2 = ax.twinx()
    ax2.plot(guilds, [level["machine_busy_fraction"] * 100 for level in levels], "^:", color="grey",
             label="machine CPU busy %")
    ax2.set_ylabel("machine CPU busy %")
    ax2.set_ylim(0, 100)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left", fontsize=8)
    ax.set_title("Turn overhead vs concurrent talking guilds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_all(result: dict[str, Any]) -> None:
    plot_turn(result, DOCS / "benchmarks_turn_stages.png")
    plot_scaling(result, DOCS / "benchmarks_scaling.png")


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "results.json"
    plot_all(json.loads(path.read_text()))


if __name__ == "__main__":
    main()
