"""A reply's FFmpeg is started off the event loop, its audio is not lost meanwhile, and no process
is left behind however early the reply is dropped."""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import threading
import time
from collections.abc import Callable

import pytest

from bot.voice.opus_source import StreamingOpusSource
from bot.voice.player import SpeechPlayer
from bot.voice.sender import PacketSender
from tests.bot.voice.playback_helpers import FFMPEG, FakeVoiceClient, Reader, decode, peaks, tone


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_beginning_a_reply_does_not_start_a_process_on_the_loop_thread() -> None:
    # fork_exec blocks its caller until the child has exec'd: 2.2 ms per reply on the loop at 50
    # answering guilds (bench/scaling.py). cProfile sees only the thread it runs on.
    voice = FakeVoiceClient()
    player = SpeechPlayer(voice, ffmpeg_executable=FFMPEG, sender=PacketSender(frame=0.005))
    profile = cProfile.Profile()
    profile.enable()
    player.begin_reply()
    profile.disable()
    called = {name for (_, _, name) in pstats.Stats(profile).stats}  # type: ignore[attr-defined]  # pstats keeps its table untyped
    assert not any("fork_exec" in name or "posix_spawn" in name for name in called)
    player.feed(tone(0.3))
    player.finish()
    assert await asyncio.wait_for(player.wait_done(), 10) > 0.25  # and the reply still played


def test_audio_fed_before_ffmpeg_is_started_is_played() -> None:
    jobs: list[Callable[[], None]] = []
    source = StreamingOpusSource(executable=FFMPEG, spawn=jobs.append)
    try:
        source.feed(tone(1.0))  # 96 KB of float samples: more than a pipe holds, so some waits
        source.finish()
        assert len(jobs) == 1  # nothing started yet
        reader = Reader(source)
        reader.start()
        jobs.pop()()
        reader.join(10)
        assert reader.error is None and not reader.is_alive()
        assert peaks(decode(reader.packets))[0] == pytest.approx(440, abs=5)
        assert source.played_seconds == pytest.approx(1.0, abs=0.04)
    finally:
        source.cleanup()
    process = source.process
    assert process is not None and process.poll() is not None


def test_a_reply_dropped_before_its_ffmpeg_started_starts_none_and_keeps_no_pipe() -> None:
    before = _open_fds()
    jobs: list[Callable[[], None]] = []
    source = StreamingOpusSource(executable=FFMPEG, spawn=jobs.append)
    source.feed(tone(0.2))
    source.cleanup()
    jobs.pop()()  # the spawn thread gets to it after the barge-in
    assert source.process is None
    assert source.read() == b""
    for _ in range(1000):  # the pipe thread closes the stdin pipe (bot.voice.pipes), just after
        if _open_fds() == before:
            break
        time.sleep(0.002)
    assert _open_fds() == before


def test_a_reply_dropped_while_its_ffmpeg_starts_leaves_no_process() -> None:
    # Every interleaving of the spawn thread and the clean-up: started and killed, or never started.
    for _ in range(10):
        started = threading.Event()

        def spawn(job: Callable[[], None], started: threading.Event = started) -> None:
            def run() -> None:
                started.set()
                job()
            threading.Thread(target=run).start()

        source = StreamingOpusSource(executable=FFMPEG, spawn=spawn)
        source.feed(tone(0.1))
        started.wait(5)
        source.cleanup()
        process = source.process
        assert process is None or process.poll() is not None


def test_an_ffmpeg_that_cannot_start_ends_the_reply_instead_of_raising() -> None:
    ended = threading.Event()
    source = StreamingOpusSource(executable="/nonexistent/ffmpeg", on_eof=ended.set)
    source.feed(tone(0.1))
    assert ended.wait(5)
    assert source.process is None
    assert source.read() == b""
    source.cleanup()


async def test_barge_in_just_after_the_reply_began_leaves_no_ffmpeg() -> None:
    voice = FakeVoiceClient()
    player = SpeechPlayer(voice, ffmpeg_executable=FFMPEG, clock=time.monotonic, sender=PacketSender(frame=0.005))
    sources = []
    for _ in range(5):
        player.begin_reply()  # a new reply interrupts the one before, at once
        assert player.source is not None
        sources.append(player.source)
        player.feed(tone(0.1))
    player.interrupt()
    for source in sources:
        process = source.process
        assert process is None or process.poll() is not None


async def test_a_replys_ffmpeg_runs_at_the_configured_niceness_below_the_bot() -> None:
    # Under a full CPU the event loop must win the core over 50 encoders (FFMPEG_NICENESS).
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    voice = FakeVoiceClient()
    player = SpeechPlayer(voice, ffmpeg_executable=FFMPEG, sender=PacketSender(frame=0.005), ffmpeg_niceness=7)
    player.begin_reply()
    assert player.source is not None
    process = player.source.process
    assert process is not None
    assert os.getpriority(os.PRIO_PROCESS, process.pid) == min(19, ours + 7)
    player.feed(tone(0.3))
    player.finish()
    assert await asyncio.wait_for(player.wait_done(), 10) > 0.25  # it still plays all of it


def test_niceness_zero_leaves_the_encoder_at_the_bots_priority_and_large_ones_stop_at_19() -> None:
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    for niceness, expected in ((0, ours), (40, 19)):
        source = StreamingOpusSource(executable=FFMPEG, niceness=niceness)
        process = source.process
        assert process is not None
        assert os.getpriority(os.PRIO_PROCESS, process.pid) == expected
        source.cleanup()
