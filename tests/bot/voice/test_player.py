"""SpeechPlayer (the loop side of playback) against the real bundled FFmpeg, a fake voice client
and the packet sender (sped up: a packet every 5 ms, so a second of speech plays in a quarter)."""

from __future__ import annotations

import asyncio
import threading
import time

import discord
import pytest

from bot.voice.opus_source import FRAME_SECONDS, StreamingOpusSource
from bot.voice.player import SpeechPlayer
from bot.voice.sender import SILENCE_FRAMES, PacketSender
from tests.bot.voice.playback_helpers import FFMPEG, FakeVoiceClient, chunks, decode, peaks, tone, until


def fast_player(voice: FakeVoiceClient, *, frame: float = 0.005) -> SpeechPlayer:
    return SpeechPlayer(voice, ffmpeg_executable=FFMPEG, clock=time.monotonic, sender=PacketSender(frame=frame))


async def test_player_plays_a_reply_of_several_sentences_through_one_stream() -> None:
    voice = FakeVoiceClient()
    player = fast_player(voice)
    player.begin_reply()
    source = player.source
    assert source is not None
    for sentence in (tone(0.6), tone(0.4, 440.0)):
        assert voice.sent == [] or source.first_packet_ready_at is not None  # nothing before a packet
        for chunk in chunks(sentence, [2400, 4800, 9600]):
            player.feed(chunk)
            await asyncio.sleep(0.01)
    player.finish()
    played = await asyncio.wait_for(player.wait_done(), 10)

    assert played == pytest.approx(1.0, abs=0.04)
    assert player.played_seconds == played
    assert not player.playing
    assert source.process.poll() is not None
    audio = decode(voice.audio())
    assert peaks(audio)[0] == pytest.approx(440, abs=5)
    assert len(audio) / 48_000 - source.padded_seconds == pytest.approx(1.0, abs=0.04)
    assert voice.sent[-SILENCE_FRAMES:] == [(t, discord.opus.OPUS_SILENCE) for t, _ in voice.sent[-SILENCE_FRAMES:]]
    await until(lambda: len(voice.speaking) == 2, "speaking on and off")
    assert voice.speaking == [discord.SpeakingState.voice, discord.SpeakingState.none]


async def test_interrupt_stops_at_once_and_reports_what_was_played() -> None:
    voice = FakeVoiceClient()
    player = fast_player(voice)
    player.begin_reply()
    source = player.source
    assert source is not None
    player.feed(tone(3.0))
    await until(lambda: len(voice.audio()) >= 10, "10 packets played")

    played = player.interrupt()
    sent_at_interrupt = len(voice.audio())

    assert not player.playing
    assert source.process.poll() is not None
    assert await asyncio.wait_for(player.wait_done(), 1) == played
    await until(lambda: voice.silences() >= SILENCE_FRAMES, "the silence that ends speech")
    await asyncio.sleep(0.05)
    # Nothing after the interrupt; the sender may have had one packet in hand when it came.
    assert len(voice.audio()) - sent_at_interrupt in (0, 1)
    assert len(voice.audio()) * FRAME_SECONDS - played in (pytest.approx(0.0), pytest.approx(FRAME_SECONDS))
    assert played < 3.0 - 1.0  # most of the reply was never sent
    player.feed(tone(0.1))  # late TTS chunks after barge-in are dropped
    assert player.interrupt() == 0.0


async def test_reply_without_audio_finishes_without_playing() -> None:
    voice = FakeVoiceClient()
    player = fast_player(voice)
    player.begin_reply()
    source = player.source
    assert source is not None
    player.finish()
    assert await asyncio.wait_for(player.wait_done(), 10) == 0.0
    assert voice.sent == [] and voice.speaking == []
    assert source.process.poll() is not None


async def test_a_new_reply_replaces_one_still_playing() -> None:
    voice = FakeVoiceClient()
    player = fast_player(voice)
    player.begin_reply()
    first = player.source
    player.feed(tone(2.0))
    await until(lambda: bool(voice.audio()), "first reply playing")
    player.begin_reply()
    assert first is not None and first.process.poll() is not None
    assert player.source is not first and player.playing
    player.close()
    assert not player.playing


async def test_a_reply_is_not_played_while_disconnected() -> None:
    voice = FakeVoiceClient()
    voice.connected = False
    player = fast_player(voice)
    player.begin_reply()
    player.feed(tone(0.3))
    player.finish()
    assert await asyncio.wait_for(player.wait_done(), 10) == 0.0
    assert voice.sent == []


async def test_every_guild_plays_from_one_sender_thread() -> None:
    # discord.py's VoiceClient.play starts an AudioPlayer thread per reply (50 guilds: 50 threads
    # waking every 20 ms, fighting the event loop for the GIL); the sender is one thread for all.
    sender = PacketSender(frame=0.005)
    voices = [FakeVoiceClient() for _ in range(8)]
    players = [SpeechPlayer(v, ffmpeg_executable=FFMPEG, clock=time.monotonic, sender=sender) for v in voices]
    for player in players:
        player.begin_reply()
        player.feed(tone(0.3))
        player.finish()
    await asyncio.wait_for(asyncio.gather(*(p.wait_done() for p in players)), 20)
    names = set().union(*(v.threads for v in voices))
    assert names == {"voice-packet-sender"}
    assert not any(t.name.startswith("audio-player") for t in threading.enumerate())
    for voice in voices:
        assert len(voice.audio()) >= 14  # 0.3 s: every guild's reply was played


async def test_a_reply_starts_no_thread_of_its_own() -> None:
    # A writer and a pump thread per FFmpeg, and an AudioPlayer per reply, were 150 threads at
    # 50 answering guilds; now the process's pipe thread and sender thread serve every reply.
    voice = FakeVoiceClient()
    sender = PacketSender(frame=0.005)
    warm = SpeechPlayer(voice, ffmpeg_executable=FFMPEG, sender=sender)  # starts the shared threads
    warm.begin_reply()
    warm.feed(tone(0.1))
    warm.finish()
    await asyncio.wait_for(warm.wait_done(), 10)
    before = threading.active_count()
    players = [SpeechPlayer(FakeVoiceClient(), ffmpeg_executable=FFMPEG, sender=sender) for _ in range(5)]
    for player in players:
        player.begin_reply()
        player.feed(tone(0.3))
    await until(lambda: all(p.source is not None and p.source.first_packet_read_at for p in players), "all playing")
    assert threading.active_count() == before
    for player in players:
        player.close()


def test_a_source_cleaned_up_at_once_leaves_no_process_and_no_pipe_open() -> None:
    source = StreamingOpusSource(executable=FFMPEG)
    source.feed(tone(0.2))
    source.cleanup()
    source.cleanup()  # idempotent
    # Cleaned up before the spawn thread got to it, no FFmpeg was started (bot.voice.spawn).
    process = source.process
    assert process is None or process.poll() is not None
    deadline = time.monotonic() + 5
    while not (source._input.closed and (process is None or source._stdout.closed)) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert source._input.closed  # the pipe thread closes FFmpeg's stdin (bot.voice.pipes), just after
    assert process is None or source._stdout.closed  # the pipe thread saw the killed FFmpeg's output end
    assert source.read() == b""
