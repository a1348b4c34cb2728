"""Real-room turn-taking (issue 12): the scripted rooms of tests/fakes/rooms played against the
real bot (a subprocess, as shipped) through the loopback fakes, judged from the outside.

    .venv/bin/python -m bench.room [--repeat 3] [--rooms two_sentences,french] [--modes server,local]

Modes: ``server`` runs the bot on a Voxtral 3 realtime model (the server's turn events end turns),
``local`` on ``voxtral-mini-transcribe-realtime-2602`` (no turn detection: the bot's own
end-of-turn). Injected latencies: STT final 200 ms, chat first token 300 ms then 30 tokens/s,
TTS first audio 300 ms then real time; turn events as the fake Mistral models them.

Reported per mode and room: false cut-offs, false interruptions, spurious replies, missed
addressed questions, STT seconds on music/noise, the largest STT overhead of one session (billed
minus speech), wasted preemptive starts and their cost, and latency from the question's last audio
packet to the answer's first packet (p50/p95 over every answered question). What each counts is in
tests/fakes/rooms/scoring.py. The JSON goes to stdout (``--json``) or bench/results_room.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.stack import running_stack
from bench.turns import pct
from tests.fakes.discord import FakeDiscord
from tests.fakes.rooms.runner import Seated, play, seat
from tests.fakes.rooms.scenarios import ROOMS, Room
from tests.fakes.rooms.scoring import RoomOutcome, score

RESULTS = Path(__file__).resolve().parent / "results_room.json"
MODELS = {
    "server": "voxtral-mini-transcribe-realtime-3-0",
    "local": "voxtral-mini-transcribe-realtime-2602",
}
COUNTS = ("false_cut_offs", "false_interruptions", "spurious_replies", "missed_questions", "preemptive_wasted")


async def run_mode(mode: str, rooms: list[Room], repeat: int) -> list[RoomOutcome]:
    plan = [r for r in rooms for _ in range(repeat)]

    async def seat_all(fake: FakeDiscord) -> list[Seated]:
        return [await seat(fake, r) for r in plan]

    outcomes = []
    # Real (espeak-ng) speech and music: the rooms run the product's VAD, not the stand-in's.
    env = {"STT_MODEL": MODELS[mode], "VAD": "silero"}
    async with running_stack(0, log_name=f"room-{mode}", env_overrides=env, seat=seat_all) as stack:
        for r, seated in zip(plan, stack.seated, strict=True):
            print(f"  {mode}: {r.name}", file=sys.stderr, flush=True)
            trace = await play(r, seated, fake_discord=stack.fake_discord, fake_voice=stack.fake_voice,
                               fake_mistral=stack.fake_mistral)
            outcome = score(trace)
            for note in outcome.notes:
                print(f"    {note}", file=sys.stderr, flush=True)
            outcomes.append(outcome)
    return outcomes


def summarise(outcomes: list[RoomOutcome]) -> dict[str, Any]:
    latencies = [x for o in outcomes for x in o.latencies]
    total: dict[str, Any] = {key: sum(getattr(o, key) for o in outcomes) for key in COUNTS}
    total["wasted_usd"] = round(sum(o.wasted_usd for o in outcomes), 6)
    total["chat_requests"] = sum(o.chat_requests for o in outcomes)
    total["stt_nonspeech_s"] = round(sum(o.stt_nonspeech_s for o in outcomes), 1)
    total["stt_billed_s"] = round(sum(o.stt_billed_s for o in outcomes), 1)
    total["stt_speech_s"] = round(sum(o.stt_speech_s for o in outcomes), 1)
    total["stt_overhead_max_s"] = round(max((o.stt_overhead_max_s for o in outcomes), default=0.0), 2)
    total["latency_ms"] = {
        "p50": round(statistics.median(latencies) * 1000) if latencies else None,
        "p95": round(pct(latencies, 0.95) * 1000) if latencies else None,
        "n": len(latencies),
    }
    return total


def table(results: dict[str, Any]) -> str:
    lines = ["| mode | room | cut-offs | false interruptions | spurious | missed | STT on music/noise s "
             "| STT overhead max s | wasted starts (USD) | latency p50 / p95 ms |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for mode, data in results["modes"].items():
        by_room: dict[str, list[dict[str, Any]]] = {}
        for outcome in data["rooms"]:
            by_room.setdefault(outcome["room"], []).append(outcome)
        rows = [(name, _fold(items)) for name, items in by_room.items()] + [("**all**", data["total"])]
        for name, row in rows:
            latency = row["latency_ms"]
            lines.append(
                f"| {mode} | {name} | {row['false_cut_offs']} | {row['false_interruptions']} | "
                f"{row['spurious_replies']} | {row['missed_questions']} | {row['stt_nonspeech_s']} | "
                f"{row['stt_overhead_max_s']} | {row['preemptive_wasted']} ({row['wasted_usd']:.6f}) | "
                f"{latency['p50']} / {latency['p95']} |")
    return "\n".join(lines)


def _fold(items: list[dict[str, Any]]) -> dict[str, Any]:
    outcomes = [RoomOutcome(**{k: v for k, v in item.items() if k != "replies"}) for item in items]
    return summarise(outcomes)


async def measure(rooms: list[Room], repeat: int, modes: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {"repeat": repeat, "modes": {}}
    for mode in modes:
        outcomes = await run_mode(mode, rooms, repeat)
        results["modes"][mode] = {
            "model": MODELS[mode],
            "total": summarise(outcomes),
            "rooms": [{k: v for k, v in asdict(o).items() if k != "replies"} for o in outcomes],
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rooms", default=",".join(r.name for r in ROOMS))
    parser.add_argument("--modes", default="server,local")
    parser.add_argument("--json", action="store_true", help="print the JSON instead of writing it")
    args = parser.parse_args()
    chosen = [r for r in ROOMS if r.name in args.rooms.split(",")]
    results = asyncio.run(measure(chosen, args.repeat, args.modes.split(",")))
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(table(results), file=sys.stderr if args.json else sys.stdout)


if __name__ == "__main__":
    main()
