"""Resident memory of the bot process (issue 5, benchmark 5): idle, per voice guild, per active speaker.

    .venv/bin/python -m bench.memory [--guilds 1 10 50]

For each N a fresh bot process (bench/botproc.py: ``assemble`` + login) sees N guilds. RSS is read
from /proc/<pid>/status (VmRSS) of the bot process alone (the fakes live in this process):
  idle     after login and READY for all N guilds, settled for 2 s;
  voice    after /join in every guild (voice gateway, UDP, DAVE session, Hearing, player; FFmpeg is
           only spawned per reply and is a separate process anyway);
  active   after one simulated user per guild spoke once, all at the same time, and every reply played
           (per-speaker decoder, jitter buffer, VAD, segmenter, the realtime STT socket came and went).
The peak during the activity is sampled every 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
from typing import Any

from bench.stack import Stack, running_stack, utterance_opus
from bench.turns import UTTERANCE_S, configure_streaming, one_turn

SETTLE_S = 2.0


async def _settled_rss(stack: Stack) -> float:
    await asyncio.sleep(SETTLE_S)
    return stack.rss_mb()


async def _sample_peak(stack: Stack, stop: asyncio.Event) -> float:
    peak = 0.0
    while not stop.is_set():
        peak = max(peak, stack.rss_mb())
        await asyncio.sleep(0.1)
    return peak


async def measure_stack(stack: Stack) -> dict[str, Any]:
    """Idle / voice / active RSS for the guilds of ``stack``; leaves the members joined."""
    guilds = len(stack.worlds)
    gc.collect()
    idle = await _settled_rss(stack)
    loop = asyncio.get_running_loop()
    started = loop.time()
    members = [await stack.join(world, seed=i) for i, world in enumerate(stack.worlds)]
    join_s = loop.time() - started
    voice = await _settled_rss(stack)
    configure_streaming(stack)
    opus = utterance_opus(UTTERANCE_S, 5)
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_peak(stack, stop))
    await asyncio.gather(*(one_turn(stack, m, opus) for m in members))
    stop.set()
    peak = await sampler
    active = await _settled_rss(stack)
    result = {
        "guilds": guilds,
        "rss_idle_mb": round(idle, 1),
        "rss_voice_mb": round(voice, 1),
        "rss_active_mb": round(active, 1),
        "rss_peak_during_turns_mb": round(peak, 1),
        "per_voice_guild_mb": round((voice - idle) / guilds, 3),
        "per_active_speaker_mb": round((active - voice) / guilds, 3),
        "join_seconds_total": round(join_s, 1),
    }
    stack.members = members  # type: ignore[attr-defined]
    return result


async def measure(guilds: int) -> dict[str, Any]:
    async with running_stack(guilds, log_name=f"memory-{guilds}") as stack:
        return await measure_stack(stack)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guilds", type=int, nargs="+", default=[1, 10, 50])
    args = parser.parse_args()
    for n in args.guilds:
        print(json.dumps(asyncio.run(measure(n))), flush=True)


if __name__ == "__main__":
    main()
