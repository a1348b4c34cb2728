"""Playback CPU per talking guild (issue 15): the bot's side (feeding FFmpeg, the pipe thread
parsing its NUT, the packet sender taking a packet every 20 ms per reply, as the bot plays since
session 5) and its FFmpeg, for N replies streamed at once at real time in the fake TTS's 62.5 ms
chunks. ``--threads``: a player thread per reply instead of the sender (discord.py's AudioPlayer
way, the bot's before session 5).

    .venv/bin/python -m bench.playback_cpu [--threads] [guilds ...]     # default: 1 10

The bot-side figure is this process's CPU time (all threads) over the run; FFmpeg's is the
children's CPU time once every FFmpeg has exited. Both as a share of one core, per guild. The
feeder's is the CPU of the thread that feeds the chunks (the event loop's share, in the bot), per
chunk. Speech is fed as the TTS gives it since issue 15: float32 (``F32LE``).
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time

import numpy as np

from bot.audio.ffmpeg import ffmpeg_executable
from bot.audio.frames import F32LE
from bot.voice.opus_source import StreamingOpusSource
from bot.voice.sender import PacketSender

SECONDS = 5.0
CHUNK_SAMPLES = 1500  # 62.5 ms at 24 kHz
RATE = 24_000


def _speech(seconds: float) -> bytes:
    t = np.arange(round(seconds * RATE)) / RATE
    wave = np.sin(2 * np.pi * (150 * t + 40 * t**2)) * (0.6 + 0.3 * np.sin(2 * np.pi * 3.1 * t))
    return (wave * 0.5).astype("<f4").tobytes()


def _player(source: StreamingOpusSource, packets: list[int]) -> None:
    start = time.perf_counter()
    loops = 0
    while True:
        data = source.read()
        if not data:
            return
        packets[0] += 1
        loops += 1
        time.sleep(max(0.0, start + 0.020 * loops - time.perf_counter()))


class _Link:
    """A connected voice client that counts what it is sent (the UDP send is not measured)."""

    ws = None  # SPEAKING updates are skipped: no event loop here

    def __init__(self, packets: list[int]) -> None:
        self.packets = packets

    def is_connected(self) -> bool:
        return True

    def send_audio_packet(self, data: bytes, *, encode: bool = True) -> None:
        self.packets[0] += 1


def measure(guilds: int, executable: str, *, threads: bool = False) -> dict[str, float | str]:
    pcm = _speech(SECONDS)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    sources = [StreamingOpusSource(executable=executable) for _ in range(guilds)]
    counts = [[0] for _ in sources]
    players = [threading.Thread(target=_player, args=(s, c), daemon=True) for s, c in zip(sources, counts, strict=True)]
    sender, ended = PacketSender(), threading.Semaphore(0)
    step = CHUNK_SAMPLES * 4
    started = time.perf_counter()
    feeder_cpu, fed = 0.0, 0
    for index, offset in enumerate(range(0, len(pcm), step)):
        time.sleep(max(0.0, started + index * CHUNK_SAMPLES / RATE - time.perf_counter()))
        feeding = time.thread_time()
        for source in sources:
            source.feed(pcm[offset : offset + step], F32LE)
        feeder_cpu += time.thread_time() - feeding
        fed += len(sources)
        if index == 1:  # playback starts after the prebuffer, as SpeechPlayer would start it
            for player, source, count in zip(players, sources, counts, strict=True):
                if threads:
                    player.start()
                else:
                    sender.play(_Link(count), source, after=lambda _error: ended.release())
    for source in sources:
        source.finish()
    for player in players:
        if threads:
            player.join(SECONDS * 4)
        else:
            ended.acquire(timeout=SECONDS * 4)
    for source in sources:
        source.cleanup()
    wall = time.perf_counter() - wall_before
    cpu = time.process_time() - cpu_before
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    ffmpeg = (children_after.ru_utime + children_after.ru_stime) - (children_before.ru_utime + children_before.ru_stime)
    return {
        "guilds": guilds,
        "players": "a thread per reply" if threads else "one sender thread",
        "packets_per_guild": round(sum(c[0] for c in counts) / guilds, 1),
        "wall_s": round(wall, 2),
        "bot_core_pct_per_guild": round(100 * cpu / wall / guilds, 2),
        "ffmpeg_core_pct_per_guild": round(100 * ffmpeg / wall / guilds, 2),
        "feeder_cpu_us_per_chunk": round(1e6 * feeder_cpu / fed, 1),
    }


def main() -> None:
    threads = "--threads" in sys.argv[1:]
    levels = [int(arg) for arg in sys.argv[1:] if arg != "--threads"] or [1, 10]
    executable = ffmpeg_executable()
    print(json.dumps([measure(n, executable, threads=threads) for n in levels], indent=1))


if __name__ == "__main__":
    main()
