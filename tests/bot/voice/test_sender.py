"""PacketSender on a fake clock, stepped by hand (``threaded=False``): each stream's 20 ms cadence,
underruns, pause/resume, stop, failures and lost connections, as discord.py's AudioPlayer has them."""

from __future__ import annotations

import asyncio
from collections import deque

import pytest
from discord import SpeakingState

from bot.audio.frames import OPUS_SILENCE
from bot.voice.sender import SILENCE_FRAMES, PacketSender, Playback

LATE = object()  # not ready at the first look, ready at the second
DRY = object()  # not ready at either look: silence stands in for it


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Source:
    def __init__(self, *script: bytes | object, error: Exception | None = None) -> None:
        self.script: deque[bytes | object] = deque(script)
        self.polls: list[bool] = []
        self._current_error = error

    def poll(self, *, last_chance: bool) -> bytes | None:
        self.polls.append(last_chance)
        if not self.script:
            return b""
        item = self.script[0]
        if item is LATE or item is DRY:
            if not last_chance:
                return None
            self.script.popleft()
            return self.script.popleft() if item is LATE else OPUS_SILENCE  # type: ignore[return-value]
        self.script.popleft()
        if isinstance(item, Exception):
            raise item
        assert isinstance(item, bytes)
        return item


class Voice:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.sent: list[tuple[float, bytes]] = []
        self.speaking: list[SpeakingState] = []
        self.connected = True
        self.timeout = 1.0
        self.ws = self

    async def speak(self, state: SpeakingState) -> None:
        self.speaking.append(state)

    def is_connected(self) -> bool:
        return self.connected

    def send_audio_packet(self, data: bytes, *, encode: bool = True) -> None:
        assert not encode
        self.sent.append((round(self.clock.now, 4), data))

    def audio(self) -> list[tuple[float, bytes]]:
        return [(t, d) for t, d in self.sent if d != OPUS_SILENCE]


def world() -> tuple[Clock, PacketSender, Voice]:
    clock = Clock()
    return clock, PacketSender(clock=clock, threaded=False), Voice(clock)


def step(clock: Clock, sender: PacketSender, *times: float) -> None:
    for at in times:
        clock.now = at
        sender.run_due()


def test_each_stream_sends_a_packet_every_frame_from_its_own_start() -> None:
    clock, sender, voice = world()
    other = Voice(clock)
    sender.play(voice, Source(b"a0", b"a1", b"a2"))
    step(clock, sender, 0.0)
    clock.now = 0.007
    sender.play(other, Source(b"b0", b"b1"))
    assert sender.run_due() == pytest.approx(0.020)
    step(clock, sender, 0.010, 0.0185, 0.024, 0.027, 0.040)
    assert voice.audio() == [(0.0, b"a0"), (0.0185, b"a1"), (0.04, b"a2")]  # 1.5 ms early: coalesced
    assert other.audio() == [(0.007, b"b0"), (0.027, b"b1")]  # its own phase, not the first's


def test_a_late_packet_gets_one_more_look_then_silence_and_the_cadence_holds() -> None:
    clock, sender, voice = world()
    steady = Voice(clock)
    source = Source(b"p0", DRY, LATE, b"p3", b"p4")
    sender.play(voice, source)
    sender.play(steady, Source(b"s0", b"s1", b"s2"))
    step(clock, sender, 0.0)
    clock.now = 0.020
    assert sender.run_due() == pytest.approx(0.025)  # the dry stream looks again in 5 ms ...
    assert steady.audio()[-1] == (0.02, b"s1")  # ... without holding up the other guild
    step(clock, sender, 0.025, 0.040, 0.045, 0.060, 0.080)
    assert voice.sent == [(0.0, b"p0"), (0.025, OPUS_SILENCE), (0.045, b"p3"), (0.06, b"p4"), (0.08, OPUS_SILENCE),
                          *[(0.08, OPUS_SILENCE)] * (SILENCE_FRAMES - 1)]
    assert source.polls == [False, False, True, False, True, False, False]


def test_pause_sends_the_silence_frames_reads_nothing_and_resume_starts_a_new_schedule() -> None:
    clock, sender, voice = world()
    source = Source(b"p0", b"p1", b"p2", b"p3")
    playback = sender.play(voice, source)
    step(clock, sender, 0.0, 0.020)
    clock.now = 0.031
    playback.pause()
    assert not playback.is_playing()
    step(clock, sender, 0.031, 0.040, 0.060, 0.100)
    assert voice.sent[2:] == [(0.031, OPUS_SILENCE)] * SILENCE_FRAMES
    assert len(source.polls) == 2  # nothing read while paused: resume goes on from the same packet
    clock.now = 0.107
    playback.resume()
    step(clock, sender, 0.107, 0.120, 0.127)
    assert voice.audio() == [(0.0, b"p0"), (0.02, b"p1"), (0.107, b"p2"), (0.127, b"p3")]


def test_stop_ends_the_stream_at_once_with_silence_and_after() -> None:
    clock, sender, voice = world()
    ended: list[Exception | None] = []
    source = Source(*[b"p"] * 50)
    playback = sender.play(voice, source, after=ended.append)
    step(clock, sender, 0.0, 0.020)
    clock.now = 0.025
    playback.stop()
    playback.stop()  # twice is once
    assert sender.run_due() == float("inf")
    assert voice.sent[2:] == [(0.025, OPUS_SILENCE)] * SILENCE_FRAMES
    assert ended == [None] and sender.streams == 0 and len(source.polls) == 2
    step(clock, sender, 0.040, 0.060)
    assert len(voice.sent) == 2 + SILENCE_FRAMES


def test_a_failing_stream_ends_alone_with_its_error() -> None:
    clock, sender, voice = world()
    healthy = Voice(clock)
    errors: list[Exception | None] = []
    boom = OSError("pipe")
    sender.play(voice, Source(b"p0", boom), after=errors.append)
    sender.play(healthy, Source(b"h0", b"h1", b"h2"))
    step(clock, sender, 0.0, 0.020, 0.040)
    assert errors == [boom]
    assert [d for _, d in healthy.audio()] == [b"h0", b"h1", b"h2"]


def test_the_source_s_process_error_is_reported_when_it_ends() -> None:
    clock, sender, voice = world()
    errors: list[Exception | None] = []
    crash = RuntimeError("ffmpeg exited with 1")
    sender.play(voice, Source(b"p0", error=crash), after=errors.append)
    step(clock, sender, 0.0, 0.020)
    assert errors == [crash]


def test_a_lost_connection_is_waited_out_without_reading_then_given_up() -> None:
    clock, sender, voice = world()
    ended: list[Exception | None] = []
    source = Source(b"p0", b"p1", b"p2", b"p3")
    sender.play(voice, source, after=ended.append)
    step(clock, sender, 0.0)
    voice.connected = False
    step(clock, sender, 0.020, 0.040, 0.060)
    assert len(source.polls) == 1
    voice.connected = True  # noticed at the next 20 ms look; a schedule of its own from then
    step(clock, sender, 0.065, 0.083, 0.100)
    assert voice.audio() == [(0.0, b"p0"), (0.083, b"p1")]
    step(clock, sender, 0.103)
    assert voice.audio()[-1] == (0.103, b"p2")
    voice.connected = False
    step(clock, sender, 0.123, 0.6, 1.1)
    assert ended == []
    step(clock, sender, 1.13)  # more than voice.timeout (1 s) without a connection
    assert ended == [None] and sender.streams == 0
    assert len(voice.sent) == 3  # no silence on a dead connection


async def test_speaking_follows_the_stream() -> None:
    clock, sender, voice = world()
    playback: Playback = sender.play(voice, Source(b"p0", b"p1"))
    step(clock, sender, 0.0)
    playback.pause()
    playback.resume()
    step(clock, sender, 0.001, 0.021, 0.041)
    for _ in range(3):
        await asyncio.sleep(0)
    assert voice.speaking == [SpeakingState.voice, SpeakingState.none, SpeakingState.voice, SpeakingState.none]
