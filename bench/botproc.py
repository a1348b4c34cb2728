"""The real bot in a process of its own, for benchmarks: ``assemble(settings)`` from ``bot.__main__``,
logged in to the loopback fakes that the benchmark process runs, so the fakes' CPU (Opus
encoding of the simulated users, DAVE, the fake Mistral) never runs on the bot's event loop.

    python -m bench.botproc          # settings from the environment, like ``python -m bot``

Control: one JSON object per line on stdin; each answer is one line on stdout prefixed ``@@``.
Commands: ``timings`` (every recorded TurnTimings of a guild), ``sequential`` (answer a guild
with the naive baseline of bench/sequential.py instead of the streaming engine), ``profile``
(start / stop cProfile), ``lag`` (start / stop sampling the event loop's lateness), ``quit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import gc
import io
import json
import logging
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any

from bench.sequential import install_sequential
from bot.__main__ import assemble
from bot.app import VoxcordBot
from bot.audio.clip import normalise_clip
from bot.config import Settings
from bot.conversation.engine import ConversationEngine

PREFIX = "@@"


class LoopLag:
    """How late the event loop wakes a 10 ms sleeper: every callback, thread hand-off and packet
    waits at least that long when the loop is busy (or starved of the GIL by the bot's threads)."""

    PERIOD = 0.010

    def __init__(self) -> None:
        self._samples: list[float] = []
        self._task = asyncio.get_running_loop().create_task(self._sample())
        # The cyclic garbage collector's pauses, by generation: a full collection stops every
        # thread that wants the GIL, the loop included, for as long as it walks the heap.
        self.gc_ms: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._gc_started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_ms[info["generation"]].append(round((time.perf_counter() - self._gc_started) * 1000, 3))

    async def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.PERIOD)
            self._samples.append(round((loop.time() - before - self.PERIOD) * 1000, 2))

    async def stop(self) -> list[float]:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        return self._samples


def _answer(payload: dict[str, Any]) -> None:
    sys.stdout.write(PREFIX + json.dumps(payload) + "\n")
    sys.stdout.flush()


async def _stdin_lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def serve() -> int:
    settings = Settings(_env_file=None)
    sequential = install_sequential(ConversationEngine, settings)
    profiler: cProfile.Profile | None = None
    lag: LoopLag | None = None
    async with assemble(settings, guild_ready_timeout=0.2) as bot, bot:
        runner = asyncio.create_task(bot.start(settings.discord_token.get_secret_value()))
        await asyncio.wait({runner, asyncio.create_task(bot.wait_until_ready())},
                           return_when=asyncio.FIRST_COMPLETED)
        if runner.done():
            runner.result()
            return 1
        _answer({"ready": True, "pid": os.getpid()})
        reader = await _stdin_lines()
        while line := await reader.readline():
            command = json.loads(line)
            name = command["cmd"]
            if name == "timings":
                guild_id = int(command["guild"])
                log = sequential.timings.get(guild_id) or bot.engine.timings(guild_id)
                _answer({"turns": [dict(t.stamps) for t in log] if log is not None else [],
                         "triggers": [t.trigger for t in log] if log is not None else []})
            elif name == "sequential":
                sequential.add(int(command["guild"]))
                _answer({"ok": True})
            elif name == "profile":
                if command.get("start"):
                    profiler = cProfile.Profile()
                    profiler.enable()
                    _answer({"ok": True})
                else:
                    out = io.StringIO()
                    if profiler is not None:
                        profiler.disable()
                        pstats.Stats(profiler, stream=out).sort_stats(command.get("sort", "tottime")).print_stats(
                            int(command.get("lines", 25)))
                    profiler = None
                    _answer({"profile": out.getvalue()})
            elif name == "lag":
                if command.get("start"):
                    lag = LoopLag()
                    _answer({"ok": True})
                else:
                    samples = await lag.stop() if lag is not None else []
                    _answer({"lag_ms": samples, "gc_ms": lag.gc_ms if lag is not None else {}})
                    lag = None
            elif name == "set_clip":
                _answer(await _set_clip(bot, int(command["guild"]), Path(command["wav"])))
            elif name == "quit":
                _answer({"ok": True})
                break
        with contextlib.suppress(Exception):
            await asyncio.wait_for(bot.close(), 8)
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await runner
    return 0


async def _set_clip(bot: VoxcordBot, guild_id: int, wav: Path) -> dict[str, Any]:
    """Store a guild's voice clip as /voice set does after consent (``bot.clips.store``), and
    answer once its background preparation (registered voice or compact reference) is stored, so
    every measured turn uses the result."""
    checked = await asyncio.to_thread(normalise_clip, await asyncio.to_thread(wav.read_bytes))
    await bot.clips.store(guild_id, checked, set_by_id=1, set_by_name="bench")
    async with asyncio.timeout(60):
        while (clip := await bot.database.clips.get(guild_id)) is None or not clip.prepared:  # noqa: ASYNC110 - the preparation runs in the bot's own background task
            await asyncio.sleep(0.05)
    return {"voice_id": clip.voice_id, "reference_bytes": len(clip.reference or b""), "clip_bytes": len(clip.audio)}


def main() -> int:
    logging.basicConfig(level=os.environ.get("VOXCORD_BENCH_LOG", "WARNING"), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(serve())


if __name__ == "__main__":
    sys.exit(main())
