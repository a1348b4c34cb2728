"""SpeechPlayer (the loop side of playback) against the real bundled FFmpeg and a fake voice client."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from typing import Any

import pytest

from bot.voice.opus_source import FRAME_SECONDS, StreamingOpusSource
from bot.voice.player import SpeechPlayer
from tests.bot.voice.playback_helpers import FFMPEG, FakeVoiceClient, chunks, decode, peaks, tone, until


async def test_player_plays_a_reply_of_several_sentences_through_one_stream() -> None:
    voice = FakeVoiceClient()
    player = SpeechPlayer(voice, ffmpeg_executable=FFMPEG, clock=time.monotonic)
    player.begin_reply()
    assert voice.plays == []  # nothing to play until FFmpeg has a packet
    process = player.source.process if player.source else None
    for sentence in (tone(0.6), tone(0.4, 440.0)):
        for chunk in chunks(sentence, [2400, 4800, 9600]):
            player.feed(chunk)
            await asyncio.sleep(0.01)
    player.finish()
    played = await asyncio.wait_for(player.wait_done(), 10)

    assert len(voice.plays) == 1 and voice.ready_when_played == [True]
    assert voice.reader is not None and voice.reader.error is None
    assert played == pytest.approx(1.0, abs=0.04)
    assert player.played_seconds == played
    assert not player.playing
    assert process is not None and process.poll() is not None
    audio = decode(voice.reader.packets)
    assert peaks(audio)[0] == pytest.approx(440, abs=5)
    assert len(audio) / 48_000 - voice.plays[0].padded_seconds == pytest.approx(1.0, abs=0.04)


async def test_interrupt_stops_at_once_and_reports_what_was_played() -> None:
    voice = FakeVoiceClient(pace=0.005)
    player = SpeechPlayer(voice, ffmpeg_executable=FFMPEG, clock=time.monotonic)
    player.begin_reply()
    source = player.source
    assert source is not None
    player.feed(tone(3.0))
    await until(lambda: voice.reader is not None and len(voice.reader.packets) >= 10, "10 packets played")

    played = player.interrupt()

    assert voice.stops == 1
    assert not player.playing
    assert source.process.poll() is not None
    reader = voice.reader
    assert reader is not None and voice.thread is not None
    voice.thread.join(5)
    assert not voice.thread.is_alive() and reader.error is None
    # The reader may have had one packet in hand when playback stopped.
    assert len(reader.packets) * FRAME_SECONDS - played in (pytest.approx(0.0), pytest.approx(FRAME_SECONDS))
    assert played < 3.0 - 1.0  # most of the reply was never sent
    assert await asyncio.wait_for(player.wait_done(), 1) == played
    player.feed(tone(0.1))  # late TTS chunks after barge-in are dropped
    assert player.interrupt() == 0.0


async def test_reply_without_audio_finishes_without_playing() -> None:
    voice = FakeVoiceClient()
    player = SpeechPlayer(voice, ffmpeg_executable=FFMPEG, clock=time.monotonic)
    player.begin_reply()
    source = player.source
    assert source is not None
    player.finish()
    assert await asyncio.wait_for(player.wait_done(), 10) == 0.0
    assert voice.plays == []
    assert source.process.poll() is not None


async def test_a_new_reply_replaces_one_still_playing() -> None:
    voice = FakeVoiceClient(pace=0.005)
    player = SpeechPlayer(voice, ffmpeg_executable=FFMPEG, clock=time.monotonic)
    player.begin_reply()
    first = player.source
    player.feed(tone(2.0))
    await until(lambda: bool(voice.plays), "first reply playing")
    player.begin_reply()
    assert first is not None and first.process.poll() is not None
    assert player.source is not first and player.playing
    player.close()
    assert not player.playing


class HeldExecutor(concurrent.futures.ThreadPoolExecutor):
    """The loop's default executor, holding what is submitted until the test runs it."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.held: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        self.held.append((fn, args))
        return super().submit(lambda: None)

    def run_held(self) -> None:
        for fn, args in self.held:
            fn(*args)
        self.held.clear()


async def test_begin_reply_leaves_the_playback_threads_to_the_executor() -> None:
    # Each Thread.start waits for its thread to run (2-5 ms for both on a busy process): not on
    # the event loop, between a reply's start and its chat request.
    executor, loop = HeldExecutor(), asyncio.get_running_loop()
    loop.set_default_executor(executor)
    try:
        voice = FakeVoiceClient()
        player = SpeechPlayer(voice, ffmpeg_executable=FFMPEG)
        player.begin_reply()
        source = player.source
        assert source is not None
        assert not source._writer.is_alive() and not source._pump.is_alive()  # not on the loop
        assert len(executor.held) == 1
        player.feed(tone(0.3))  # fed meanwhile: kept for the writer
        player.finish()
        executor.run_held()
        await asyncio.wait_for(player.wait_done(), 10)
    finally:
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor())
        executor.shutdown(wait=False)
    assert source.first_packet_ready_at is not None  # the threads did run
    assert source.process.poll() is not None


def test_a_source_cleaned_up_before_its_threads_start_leaves_nothing_behind() -> None:
    source = StreamingOpusSource(executable=FFMPEG, start_threads=False)
    source.cleanup()
    source.start_threads()  # too late: nothing starts
    assert source.process.poll() is not None
    assert not source._writer.is_alive() and not source._pump.is_alive()
