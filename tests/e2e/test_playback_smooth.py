"""A reply plays without holes: the bot's sent audio, decoded at the fake voice server, lined up
sentence by sentence with the speech the fake TTS made (tests/fakes/voice/alignment.py).

The fake TTS streams at exactly real time (62.5 ms chunks every 62.5 ms) with each chunk up to
40 ms early or late, as a TTS over a real network does; the reply's sentences are synthesised
with the bot's own prefetch, so the gaps between sentences are the bot's too.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

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


def reply_report(audio: BotAudio, spoken: list[str]) -> AlignmentReport:
    frames = list(audio.frames)
    voiced = [i for i, frame in enumerate(frames) if frame.opus != OPUS_SILENCE]
    reply = frames[voiced[0] : voiced[-1] + 1]
    sentences = [speech_samples(text).astype(np.float64) for text in spoken]
    # The bot and the fakes share this process, so a stall of the whole process (a GC pass on a
    # loaded machine) delays frames without the player sending less: only a much longer run of
    # nothing counts here. bench.turns, with the bot in its own process, counts from 60 ms.
    return align(played_audio(reply, late_tolerance=0.25), sentences, tts_rate=TTS_RATE)


async def test_a_reply_streamed_at_real_time_with_jitter_plays_without_inserted_silence(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    fake_mistral.transcribe = lambda _audio: "Tell me about Paris."
    fake_mistral.reply = lambda _messages: ANSWER
    fake_mistral.latency.tts_first_audio = 0.3
    fake_mistral.latency.tts_chunk_interval = REAL_TIME
    fake_mistral.latency.tts_jitter = JITTER
    world = build_world(fake_discord)
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path, world=world) as call:
        await call.speaker.speak(spoken_question())
        await wait_turns(call.bot, world.guild.id, 2)
        audio = call.fake_voice.bot_audio(world.guild.id)
        await audio.wait_for_silence()

    spoken = [r.body["input"] for r in fake_mistral.requests_to("speech")]
    assert len(spoken) == 3, spoken
    report = reply_report(audio, spoken)
    log.warning("playback alignment: %s", report.summary())
    assert report.missing_voiced_ms <= 10, report.summary()
    assert report.inserted_inside_ms == 0, report.summary()
    for sentence in report.sentences[1:]:
        assert sentence.gap_before_ms - sentence.own_gap_before_ms <= 10, report.summary()
