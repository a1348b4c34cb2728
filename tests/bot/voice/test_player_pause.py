"""Stop exactly, resume exactly: a reply paused (a tentative onset) and resumed (it was not speech)
goes on from the same sample. Played through the packet sender at its real 20 ms pace; what it
sends is compared packet for packet with the same speech encoded without a pause (FFmpeg's
encoding is deterministic for the same input)."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from bot.voice.opus_source import StreamingOpusSource
from bot.voice.player import SpeechPlayer
from bot.voice.sender import After, PacketSender, PacketSource, Playback, VoiceLink
from tests.bot.voice.playback_helpers import FFMPEG, RATE, FakeVoiceClient, Reader, until

GUARD_S = 15.0


def speech(seconds: float) -> bytes:
    """Non-periodic audio (a chirp under a slow tremolo): any lost or repeated stretch shows."""
    t = np.arange(round(seconds * RATE)) / RATE
    wave = np.sin(2 * np.pi * (150 * t + 400 * t**2)) * (0.6 + 0.3 * np.sin(2 * np.pi * 3.1 * t))
    return (wave * 16_000).astype("<i2").tobytes()


class PlayerVoice(FakeVoiceClient):
    """The fake voice client, plus the player's calls to start playing (``RecordingSender``)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []


class RecordingSender(PacketSender):
    def __init__(self, voice: PlayerVoice) -> None:
        super().__init__()
        self.voice = voice

    def play(self, voice: VoiceLink, source: PacketSource, *, after: After | None = None,
             loop: asyncio.AbstractEventLoop | None = None) -> Playback:
        self.voice.calls.append("play")
        return super().play(voice, source, after=after, loop=loop)


def real_time_player(voice: PlayerVoice) -> SpeechPlayer:
    return SpeechPlayer(voice, ffmpeg_executable=FFMPEG, clock=time.monotonic, sender=RecordingSender(voice))


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
    voice = PlayerVoice()
    player = real_time_player(voice)
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
    assert voice.silences() >= 5  # the pause was marked with discord.py's silence frames
    assert paused_at < len(sent)  # it did go on after the pause
    assert sent == expected  # every packet once, in order: no sample lost or repeated
    assert played == len(expected) * 0.020


async def test_a_pause_before_playback_starts_holds_it_until_resume() -> None:
    voice = PlayerVoice()
    player = real_time_player(voice)
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
    voice = PlayerVoice()
    player = real_time_player(voice)
    player.begin_reply(held=True)
    player.feed(speech(0.5))
    player.finish()
    source = player.source
    assert source is not None
    await until(lambda: source.first_packet_ready_at is not None, "a packet ready")
    await asyncio.sleep(0.2)  # well past the prebuffer
    player.pause()
    player.resume()
    assert voice.calls == [] and voice.audio() == [] and voice.speaking == []
    player.release()
    assert voice.calls == ["play"]  # in release itself: no timer, no second wait
    await asyncio.wait_for(player.wait_done(), GUARD_S)
    assert len(voice.audio()) >= 25
