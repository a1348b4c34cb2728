"""Stop exactly, resume exactly: a reply paused (a tentative onset) and resumed (it was not speech)
goes on from the same sample. Played through discord.py's own ``AudioPlayer`` thread, whose
``pause`` is what the player uses; what it sends is compared packet for packet with the same
speech encoded without a pause (FFmpeg's encoding is deterministic for the same input)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import discord
import numpy as np
from discord.player import AudioPlayer

from bot.audio.frames import OPUS_SILENCE
from bot.voice.opus_source import StreamingOpusSource
from bot.voice.player import SpeechPlayer
from tests.bot.voice.playback_helpers import FFMPEG, RATE, Reader, until

GUARD_S = 15.0


def speech(seconds: float) -> bytes:
    """Non-periodic audio (a chirp under a slow tremolo): any lost or repeated stretch shows."""
    t = np.arange(round(seconds * RATE)) / RATE
    wave = np.sin(2 * np.pi * (150 * t + 400 * t**2)) * (0.6 + 0.3 * np.sin(2 * np.pi * 3.1 * t))
    return (wave * 16_000).astype("<i2").tobytes()


class _Connection:
    """What ``AudioPlayer`` touches on a ``VoiceClient``; the packets it sends are recorded."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.sent: list[tuple[float, bytes]] = []
        self.lock = threading.Lock()
        self.client = self  # AudioPlayer reaches the loop through client.client.loop
        self.loop = loop
        self.ws = self

    async def speak(self, _state: Any) -> None:
        return None

    def is_connected(self) -> bool:
        return True

    def send_audio_packet(self, data: bytes, *, encode: bool = True) -> None:
        assert not encode
        with self.lock:
            self.sent.append((time.monotonic(), data))


class PlayerVoice:
    """``VoiceOutput`` as discord.VoiceClient implements it: one real ``AudioPlayer`` thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.connection = _Connection(loop)
        self.player: AudioPlayer | None = None
        self.calls: list[str] = []

    def play(self, source: discord.AudioSource, *, after: Callable[[Exception | None], Any] | None = None) -> None:
        self.calls.append("play")
        self.player = AudioPlayer(source, self.connection, after=after)  # type: ignore[arg-type]
        self.player.start()

    def stop(self) -> None:
        if self.player is not None:
            self.player.stop()

    def pause(self) -> None:
        self.calls.append("pause")
        if self.player is not None:
            self.player.pause()

    def resume(self) -> None:
        self.calls.append("resume")
        if self.player is not None:
            self.player.resume()

    def audio(self) -> list[bytes]:
        with self.connection.lock:
            return [data for _, data in self.connection.sent if data != OPUS_SILENCE]

    def silences(self) -> int:
        with self.connection.lock:
            return sum(1 for _, data in self.connection.sent if data == OPUS_SILENCE)


def reference_packets(pcm: bytes) -> list[bytes]:
    source = StreamingOpusSource(executable=FFMPEG)
    reader = Reader(source)
    reader.start()
    source.feed(pcm)
    source.finish()
    reader.join(GUARD_S)
    source.cleanup()
    assert reader.error is None and not reader.is_alive()
    return reader.packets


async def test_pause_and_resume_go_on_from_the_same_sample() -> None:
    pcm = speech(2.0)
    expected = await asyncio.to_thread(reference_packets, pcm)
    voice = PlayerVoice(asyncio.get_running_loop())
    player = SpeechPlayer(voice, ffmpeg_executable=FFMPEG, clock=time.monotonic)
    player.begin_reply()
    player.feed(pcm)
    player.finish()
    await until(lambda: len(voice.audio()) >= 25, "half a second played")

    player.pause()
    paused_at = len(voice.audio())
    await asyncio.sleep(0.3)
    during = len(voice.audio())
    player.resume()
    played = await asyncio.wait_for(player.wait_done(), GUARD_S)

    sent = voice.audio()
    assert during - paused_at <= 1  # the player may have had one packet in hand
    assert voice.silences() >= 5  # discord.py marked the pause with its silence frames
    assert paused_at < len(sent)  # it did go on after the pause
    assert sent == expected  # every packet once, in order: no sample lost or repeated
    assert played == len(expected) * 0.020


async def test_a_pause_before_playback_starts_holds_it_until_resume() -> None:
    voice = PlayerVoice(asyncio.get_running_loop())
    player = SpeechPlayer(voice, ffmpeg_executable=FFMPEG, clock=time.monotonic)
    player.begin_reply()
    player.pause()  # a tentative onset while the reply is still buffering
    player.feed(speech(0.5))
    player.finish()
    source = player.source
    assert source is not None
    await until(lambda: source.first_packet_ready_at is not None, "a packet ready")
    await asyncio.sleep(0.2)  # well past the prebuffer
    assert voice.calls == [] and voice.audio() == []
    player.resume()
    await asyncio.wait_for(player.wait_done(), GUARD_S)
    assert voice.calls == ["play"]
    assert len(voice.audio()) >= 25


async def test_a_held_reply_is_encoded_but_silent_until_release_then_starts_at_once() -> None:
    # A provisional reply: FFmpeg encodes it while its turn is unconfirmed; neither the prebuffer
    # being up nor a resume (an onset that proved noise) starts it. Released once what was
    # buffered covers the prebuffer, it starts on the spot, without a second prebuffer wait.
    voice = PlayerVoice(asyncio.get_running_loop())
    player = SpeechPlayer(voice, ffmpeg_executable=FFMPEG, clock=time.monotonic)
    player.begin_reply(held=True)
    player.feed(speech(0.5))
    player.finish()
    source = player.source
    assert source is not None
    await until(lambda: source.first_packet_ready_at is not None, "a packet ready")
    await asyncio.sleep(0.2)  # well past the prebuffer
    player.pause()
    player.resume()
    assert voice.calls == [] and voice.audio() == []
    player.release()
    assert voice.calls == ["play"]  # in release itself: no timer, no second wait
    await asyncio.wait_for(player.wait_done(), GUARD_S)
    assert len(voice.audio()) >= 25
