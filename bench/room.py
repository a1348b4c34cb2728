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
tests/fakes/rooms/scoring.py. Where that latency goes, per answered question (``steps``: what
started the reply — our early end "early", the server's "eager_end", or the final transcript —
and each stage's time after the last speech packet) and as medians per room (second table).
The JSON goes to stdout (``--json``) or bench/results_room.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.stack import running_stack
from bench.turns import pct
from tests.fakes.discord import FakeDiscord
from tests.fakes.rooms.runner import Seated, Trace, play, seat
from tests.fakes.rooms.scenarios import ROOMS, Room
from tests.fakes.rooms.scoring import RoomOutcome, score
from tests.fakes.voice.rtp import OPUS_SILENCE

RESULTS = Path(__file__).resolve().parent / "results_room.json"
MODELS = {
    "server": "voxtral-mini-transcribe-realtime-3-0",
    "local": "voxtral-mini-transcribe-realtime-2602",
}
# Per answered question, ms after its last speech packet (bot stamps from its TurnTimings, on the
# same monotonic clock; the rest from the fakes' records): what started the reply and each step.
POINTS = ("partial_sent", "eager_end_sent", "turn_end_sent", "started", "chat_received", "first_token",
          "first_sentence", "tts_received", "first_tts_audio", "confirmed", "first_packet_ready", "first_packet_sent",
          "first_packet_received")
COUNTS = ("false_cut_offs", "false_interruptions", "spurious_replies", "missed_questions", "preemptive_wasted")


async def run_mode(mode: str, rooms: list[Room], repeat: int,
                   steps: dict[int, list[dict[str, Any]]]) -> list[RoomOutcome]:
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
            bot = await stack.bot_for(seated.guild_id).call("timings", guild=seated.guild_id)
            steps[id(outcome)] = breakdown(trace, outcome, bot["turns"], bot.get("triggers", []))
            for note in outcome.notes:
                print(f"    {note}", file=sys.stderr, flush=True)
            outcomes.append(outcome)
    return outcomes


def breakdown(trace: Trace, outcome: RoomOutcome, turns: list[dict[str, float]],
              triggers: list[str | None]) -> list[dict[str, Any]]:
    """Where each answered question's latency went (see ``POINTS``)."""
    rows = []
    events = sorted((at, event["type"]) for session in trace.sessions
                    for event, at in zip(session.sent, session.sent_at, strict=False))
    for reply in outcome.replies:
        end = trace.cue_end(reply.cue) if reply.cue is not None else None
        if reply.verdict != "answer" or not reply.played or end is None:
            continue
        first_rx = reply.frames[0]
        if any(r is not reply and r.cue == reply.cue and r.played and r.frames[0] < first_rx
               for r in outcome.replies):
            continue  # not the answer the latency is measured on
        row: dict[str, Any] = {"room": outcome.room, "cue": reply.cue}

        def at(name: str, when: float | None, row: dict[str, Any] = row, end: float = end) -> None:
            row[name] = round((when - end) * 1000, 1) if when is not None else None

        at("eager_end_sent", next((t for t, kind in events if kind == "turn.eager_end" and t > end), None))
        at("turn_end_sent", next((t for t, kind in events if kind == "turn.end" and t > end), None))
        at("chat_received", reply.received_at)
        # The last text the reply's request could have carried (the early trigger waits for it).
        at("partial_sent", max((t for t, kind in events if kind == "transcription.text.delta"
                                and end - 2.0 < t < reply.received_at), default=None))
        speech = [r.received_at for r in trace.speech if r.received_at >= reply.received_at
                  and str(r.body.get("input", "")).strip() in reply.sentences]
        at("tts_received", min(speech, default=None))
        at("first_packet_received", first_rx)
        # Silence frames the bot sent inside its answer: playback ran dry (or a pause: an onset).
        row["silence_frames_inside"] = sum(1 for f in trace.frames if f.opus == OPUS_SILENCE
                                           and reply.frames[0] < f.received_at < reply.frames[-1])
        matches = [(abs(t["first_packet_sent"] - first_rx), i) for i, t in enumerate(turns)
                   if t.get("first_packet_sent") is not None]
        best = min(matches, default=None)
        if best is not None and best[0] < 0.2:
            stamps = turns[best[1]]
            row["trigger"] = triggers[best[1]] if best[1] < len(triggers) else None
            at("started", stamps.get("speech_end") if row["trigger"] != "final" else stamps.get("transcript_final"))
            for stage in ("first_token", "first_sentence", "first_tts_audio", "confirmed", "first_packet_ready",
                          "first_packet_sent"):
                at(stage, stamps.get(stage))
        if os.environ.get("ROOM_DEBUG"):
            print(outcome.room, [(round((t - end) * 1000), kind) for t, kind in events if end - 1.5 < t < end + 0.8],
                  file=sys.stderr)
            for session in trace.sessions:
                print("  ", [(round((t - end) * 1000), e.get("text", e.get("type"))) for e, t in
                             zip(session.sent, session.sent_at, strict=False) if end - 1.5 < t < end + 0.8],
                      file=sys.stderr)
        rows.append(row)
    return rows


def steps_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of each point, and how often each trigger started the reply."""
    out: dict[str, Any] = {"n": len(rows), "triggers": {}}
    for row in rows:
        kind = str(row.get("trigger"))
        out["triggers"][kind] = out["triggers"].get(kind, 0) + 1
    for point in POINTS:
        values = [row[point] for row in rows if row.get(point) is not None]
        out[point] = round(statistics.median(values), 1) if values else None
    return out


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


def steps_table(results: dict[str, Any]) -> str:
    columns = ("started", "first_token", "first_sentence", "tts_received", "first_tts_audio", "confirmed",
               "first_packet_ready", "first_packet_sent", "first_packet_received")
    lines = ["| mode | room | triggers | eager end / turn.end sent | " + " | ".join(columns) + " |",
             "|---|---|---|---|" + "---|" * len(columns)]
    for mode, data in results["modes"].items():
        by_room: dict[str, list[dict[str, Any]]] = {}
        for outcome in data["rooms"]:
            by_room.setdefault(outcome["room"], []).extend(outcome["steps"])
        for name, rows in [*by_room.items(), ("**all**", [r for o in data["rooms"] for r in o["steps"]])]:
            medians = steps_summary(rows)
            triggers = " ".join(f"{k} {v}" for k, v in sorted(medians["triggers"].items()))
            cells = " | ".join(_ms(medians[c]) for c in columns)
            lines.append(f"| {mode} | {name} | {triggers} | {_ms(medians['eager_end_sent'])} / "
                         f"{_ms(medians['turn_end_sent'])} | {cells} |")
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def _fold(items: list[dict[str, Any]]) -> dict[str, Any]:
    outcomes = [RoomOutcome(**{k: v for k, v in item.items() if k not in ("replies", "steps")}) for item in items]
    return summarise(outcomes)


async def measure(rooms: list[Room], repeat: int, modes: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {"repeat": repeat, "modes": {}}
    for mode in modes:
        steps: dict[int, list[dict[str, Any]]] = {}
        outcomes = await run_mode(mode, rooms, repeat, steps)
        results["modes"][mode] = {
            "model": MODELS[mode],
            "total": summarise(outcomes),
            "steps": steps_summary([row for o in outcomes for row in steps[id(o)]]),
            "rooms": [{**{k: v for k, v in asdict(o).items() if k != "replies"}, "steps": steps[id(o)]}
                      for o in outcomes],
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
    out = sys.stderr if args.json else sys.stdout
    print(table(results), file=out)
    print("\nWhere the latency goes: medians, ms after the question's last speech packet\n", file=out)
    print(steps_table(results), file=out)


if __name__ == "__main__":
    main()
