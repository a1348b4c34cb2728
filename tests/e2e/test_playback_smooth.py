"""A reply plays without holes: the bot's sent audio, decoded at the fake voice server, lined up
sentence by sentence with the speech the fake TTS made (tests/fakes/voice/alignment.py).

The fake TTS streams at exactly real time (62.5 ms chunks every 62.5 ms) with each chunk up to
40 ms early or late, as a TTS over a real network does; the reply's sentences are synthesised
with the bot's own prefetch, so the gaps between sentences are the bot's too.

Both speech formats: ``pcm`` (the default: float32 that FFmpeg encodes), ``opus``
(``TTS_FORMAT=opus``: FFmpeg copies the TTS's 20 ms packets, or re-encodes 60 ms ones) and pcm
through the fallback (opus asked, refused by the fake as an older server would). Copied Ogg
Opus streams keep each sentence's codec framing: the next sentence's pre-skip (312 samples at
48 kHz, 6.5 ms) and the last packet's padding (under 20 ms), so between sentences, never inside
one, opus may add up to 26.5 ms that pcm, one encoder for the whole reply, does not
(docs/decisions.md, Playback).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from bot.audio.ogg_opus import opus_frames
from tests.e2e.conversation_support import TTS_RATE, call_in_progress, wait_turns
from tests.fakes.mistral.audio import speech_samples
from tests.fakes.synth import spoken_question
from tests.fakes.voice.alignment import AlignmentReport, align, played_audio
from tests.fakes.voice.recording import BotAudio
from tests.fakes.voice.rtp import OPUS_SILENCE
from tests.harness import build_world

log = logging.getLogger(__name__)

ANSWER = ("Paris is the capital of France. It sits on the river Seine, in the north of the country. "
          "Around two million people live there.")
CHUNK_BYTES = 6001  # the fake's default: 1500 float32 samples, 62.5 ms
REAL_TIME = CHUNK_BYTES / 4 / TTS_RATE
JITTER = 0.040
OGG_FRAMING_MS = 6.5 + 20  # the next stream's pre-skip + the last packet's padding, at most


def reply_report(audio: BotAudio, spoken: list[str]) -> AlignmentReport:
    frames = list(audio.frames)
    voiced = [i for i, frame in enumerate(frames) if frame.opus != OPUS_SILENCE]
    reply = frames[voiced[0] : voiced[-1] + 1]
    sentences = [speech_samples(text).astype(np.float64) for text in spoken]
    # The bot and the fakes share this process, so a stall of the whole process (a GC pass on a
    # loaded machine) delays frames without the player sending less: only a much longer run of
    # nothing counts here. bench.turns, with the bot in its own process, counts from 60 ms.
    return align(played_audio(reply, late_tolerance=0.25), sentences, tts_rate=TTS_RATE)


@pytest.mark.parametrize("mode", ["pcm", "opus", "opus-60ms", "pcm-fallback"])
async def test_a_reply_streamed_at_real_time_with_jitter_plays_without_inserted_silence(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path, mode: str
) -> None:
    if mode == "opus-60ms":
        fake_mistral.tts_opus_frame_ms = 60  # not copyable: FFmpeg re-encodes to 20 ms frames
    if mode == "pcm-fallback":
        fake_mistral.tts_refused_formats = {"opus"}
    fake_mistral.transcribe = lambda _audio: "Tell me about Paris."
    fake_mistral.reply = lambda _messages: ANSWER
    fake_mistral.latency.tts_first_audio = 0.3
    fake_mistral.latency.tts_chunk_interval = REAL_TIME
    fake_mistral.latency.tts_jitter = JITTER
    world = build_world(fake_discord)
    settings = None if mode == "pcm" else {"tts_format": "opus"}  # pcm is the default
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path, world=world,
                                settings=settings) as call:
        await call.speaker.speak(spoken_question())
        await wait_turns(call.bot, world.guild.id, 2)
        audio = call.fake_voice.bot_audio(world.guild.id)
        await audio.wait_for_silence()

    requests = [r for r in fake_mistral.requests_to("speech") if r.status == 200]
    assert {r.body["response_format"] for r in requests} == {"opus" if mode.startswith("opus") else "pcm"}
    spoken = [r.body["input"] for r in requests]
    assert len(spoken) == 3, spoken
    report = reply_report(audio, spoken)
    log.warning("playback alignment (%s): %s", mode, report.summary())
    assert report.missing_voiced_ms <= 10, report.summary()
    assert report.inserted_inside_ms == 0, report.summary()
    framing = OGG_FRAMING_MS if mode.startswith("opus") else 0.0
    for sentence in report.sentences[1:]:
        assert sentence.gap_before_ms - sentence.own_gap_before_ms <= 10 + framing, report.summary()
    # 20 ms cadence: one 20 ms frame per packet (RTP +960 at 48 kHz) throughout the reply.
    frames = [f for f in audio.frames if f.opus != OPUS_SILENCE]
    steps = {(b.timestamp - a.timestamp) % 2**32 for a, b in zip(frames, frames[1:], strict=False)
             if b.sequence == (a.sequence + 1) % 2**16}
    assert steps == {960}, steps
    # And each packet holds one 20 ms frame (a copied 60 ms packet would play in a 20 ms slot).
    assert {opus_frames(f.opus).seconds for f in frames} == {0.020}
