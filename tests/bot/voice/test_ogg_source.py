"""SpeechPlayer fed Ogg Opus pages (TTS ``response_format="opus"``) against the real bundled
FFmpeg: 20 ms packets are copied (no encoder), other frame sizes re-encoded to 20 ms; the mode
is chosen from the first audio packet, before FFmpeg has seen a byte."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.audio.frames import F32LE
from bot.audio.ogg_opus import OggOpusReader, OpusPages, opus_frames
from bot.voice.ogg_source import OggOpusSource
from bot.voice.opus_source import StreamingOpusSource
from bot.voice.player import SpeechPlayer
from bot.voice.sender import PacketSender
from tests.bot.voice.playback_helpers import FFMPEG, FakeVoiceClient
from tests.fakes.mistral.audio import encode_speech, opus_pieces, speech_samples

SENTENCES = ("The first sentence of the reply.", "And a second one.")


def fast_player(voice: FakeVoiceClient, speech_format: str = "opus") -> SpeechPlayer:
    return SpeechPlayer(voice, ffmpeg_executable=FFMPEG, clock=time.monotonic, sender=PacketSender(frame=0.005),
                        speech_format=speech_format)


def sentence_pages(text: str, frame_ms: int = 20) -> list[OpusPages]:
    reader = OggOpusReader()
    ogg = encode_speech(speech_samples(text), "opus", opus_frame_ms=frame_ms)
    return [reader.feed(piece) for piece in opus_pieces(ogg, 0.0625)]


async def play(player: SpeechPlayer, frame_ms: int = 20) -> tuple[float, float, StreamingOpusSource]:
    player.begin_reply()
    fed = 0.0
    for text in SENTENCES:
        for pages in sentence_pages(text, frame_ms):
            player.feed_pages(pages)
            fed += pages.seconds
            await asyncio.sleep(0.005)
    source = player.source
    assert source is not None
    player.finish()
    played = await asyncio.wait_for(player.wait_done(), 15)
    return played, fed, source


async def test_20_ms_packets_are_copied_by_ffmpeg_without_an_encoder() -> None:
    voice = FakeVoiceClient()
    played, fed, source = await play(fast_player(voice))
    assert isinstance(source, OggOpusSource) and source.copy
    args = source.process.args
    assert args[args.index("-acodec"):args.index("-acodec") + 2] == ["-acodec", "copy"]
    assert not any("libopus" in arg for arg in args)
    assert played == pytest.approx(fed, abs=0.001)  # every packet played once, as the TTS sent it
    tts_packets = [p for text in SENTENCES for pages in sentence_pages(text)
                   for p in _audio_packets(pages.data)]
    assert voice.audio() == tts_packets  # copied byte for byte


async def test_60_ms_packets_are_re_encoded_to_20_ms_frames() -> None:
    voice = FakeVoiceClient()
    player = fast_player(voice)
    played, fed, source = await play(player, frame_ms=60)
    assert isinstance(source, OggOpusSource) and not source.copy  # replaced before the first write
    assert "libopus" in source.process.args
    assert all(opus_frames(packet).copyable for packet in voice.audio())
    assert played == pytest.approx(fed, abs=0.1)
    # The next reply's FFmpeg starts in the mode this one needed.
    player.begin_reply()
    assert isinstance(player.source, OggOpusSource) and not player.source.copy
    player.interrupt()


async def test_pcm_after_a_reply_begun_for_opus_gets_a_pcm_encoder() -> None:
    voice = FakeVoiceClient()
    player = fast_player(voice)
    player.begin_reply()
    assert isinstance(player.source, OggOpusSource)
    player.feed(speech_samples("Hello there.").astype("<f4").tobytes(), F32LE)
    source = player.source
    assert type(source) is StreamingOpusSource
    player.finish()
    assert await asyncio.wait_for(player.wait_done(), 15) == pytest.approx(len("Hello there.") * 0.065, abs=0.04)


def _audio_packets(ogg: bytes) -> list[bytes]:
    packets, offset, partial = [], 0, b""
    while offset < len(ogg):
        segments = ogg[offset + 26]
        lacing = ogg[offset + 27:offset + 27 + segments]
        position = offset + 27 + segments
        for size in lacing:
            partial += ogg[position:position + size]
            position += size
            if size < 255:
                if not partial.startswith((b"OpusHead", b"OpusTags")):
                    packets.append(partial)
                partial = b""
        offset = position
    return packets
