"""Barge-in: the user talks over a long reply; the bot falls silent, forgets what it had not said
yet, and answers the new question.

Everything real but the services (see test_conversation.py). The fake TTS streams a little faster
than real time and the fake chat writes a few words a second, so when the user starts speaking
the reply is still playing, later sentences are still being written and synthesised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.audio.utterances import Event, SpeechStarted
from tests.e2e.conversation_support import call_in_progress, wait_turns
from tests.fakes.synth import spoken_question
from tests.fakes.voice.recording import BotAudio
from tests.fakes.voice.rtp import OPUS_SILENCE
from tests.harness import build_world

log = logging.getLogger(__name__)

QUESTION = "Tell me about the history of Lyon."
SENTENCES = [
    "Lyon was founded by the Romans in forty three before Christ as Lugdunum.",
    "It became the capital of the Gauls and the birthplace of two emperors.",
    "In the Renaissance its silk weavers and printers made it rich and famous.",
    "The Lumiere brothers invented the cinematograph there in eighteen ninety five.",
    "Today it is known across the world for its food and its festival of lights.",
    "Its old town sits between two rivers and is a world heritage site.",
]
LONG_ANSWER = " ".join(SENTENCES)
INTERRUPTION = "Sorry, what time is it?"
SHORT_ANSWER = "It is nine o'clock."

GUARD_S = 30.0  # hang guard only
STOP_GUARD_S = 1.0  # generous bound on barge-in stop latency; the goal is 100 ms
PLAYED_BEFORE_BARGE_IN = 50  # 20 ms frames of the long answer heard before the user speaks


@dataclass
class FrameWatch:
    """When each real (non-silence) bot audio frame arrived at the fake voice server."""

    audio: BotAudio
    arrivals: list[float] = field(default_factory=list)

    def audio_frames(self) -> int:
        return sum(1 for frame in self.audio.frames if frame.opus != OPUS_SILENCE)

    async def run(self) -> None:
        seen = 0
        while True:
            count = self.audio_frames()
            now = time.monotonic()
            self.arrivals.extend([now] * (count - seen))
            seen = count
            await asyncio.sleep(0.002)

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(GUARD_S):
            while True:
                if len(self.arrivals) >= count:
                    return
                await asyncio.sleep(0.01)


@pytest.mark.parametrize("mode", ["pcm", "opus", "pcm-fallback"])
async def test_talking_over_a_long_reply_stops_it_and_the_new_question_is_answered(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path, mode: str
) -> None:
    if mode == "pcm-fallback":
        fake_mistral.tts_refused_formats = {"opus"}  # an older server: the bot falls back to pcm
    fake_mistral.transcribe = lambda _audio: QUESTION
    fake_mistral.reply = lambda _messages: LONG_ANSWER
    # Chat writes ~15 words/s, so later sentences are still unwritten at the barge-in; TTS streams
    # 62.5 ms chunks every 40 ms (~1.5x real time), so a sentence is still streaming too.
    fake_mistral.latency.chat_tokens_per_s = 15
    fake_mistral.latency.tts_chunk_interval = 0.04
    world = build_world(fake_discord)
    settings = None if mode == "pcm" else {"tts_format": "opus"}  # pcm is the default
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path, world=world,
                                settings=settings) as call:
        guild_id = world.guild.id
        runtime = call.bot.engine.runtime(guild_id)
        assert runtime is not None
        # Instrumentation only: note when the bot's hearing confirmed the user's speech onset.
        detected: list[float] = []
        conversation = runtime.conversation
        on_heard = conversation.on_heard

        def noting_onsets(user_id: int, event: Event) -> None:
            if isinstance(event, SpeechStarted):
                detected.append(time.monotonic())
            on_heard(user_id, event)

        conversation.on_heard = noting_onsets  # type: ignore[method-assign]

        watch = FrameWatch(call.fake_voice.bot_audio(guild_id))
        watcher = asyncio.create_task(watch.run())
        try:
            await call.speaker.speak(spoken_question(1.2, seed=1))
            await watch.wait_for(PLAYED_BEFORE_BARGE_IN)
            source = runtime.player.source  # the long answer's, in the mode it was asked in
            assert type(source).__name__ == ("OggOpusSource" if mode == "opus" else "StreamingOpusSource")

            # The reply is playing; later sentences are not spoken yet.
            speech_before = [r.body["input"] for r in fake_mistral.requests_to("speech")]
            assert speech_before and len(speech_before) < len(SENTENCES), speech_before
            fake_mistral.transcribe = lambda _audio: INTERRUPTION
            fake_mistral.reply = lambda _messages: SHORT_ANSWER

            onset = time.monotonic()
            frames_at_onset = len(watch.arrivals)
            await call.speaker.speak(spoken_question(1.2, seed=5))
            # By now (1.3 s after onset) the long answer must be silent; the short one cannot have
            # started yet (it needs 0.4 s of silence, STT, chat and TTS first).
            first_detection = next(at for at in detected if at >= onset)
            long_answer_arrivals = watch.arrivals[:]
            speech_at_barge_in = [r.body["input"] for r in fake_mistral.requests_to("speech")]

            turns = await wait_turns(call.bot, guild_id, 4, deadline=GUARD_S)
            await watch.wait_for(len(long_answer_arrivals) + 10)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    # Playback stopped soon after the user started talking.
    last_frame = long_answer_arrivals[-1]
    stop_from_onset = last_frame - onset
    stop_from_detection = last_frame - first_detection
    after_onset = len(long_answer_arrivals) - frames_at_onset
    # Negative from detection: the last frame left before the bot confirmed the speech, and the
    # next one (due within 20 ms) never came. Onset to detection is mostly the VAD's min_speech.
    log.warning(
        "barge-in: last bot audio frame %.0f ms after the user's speech onset, %+.0f ms relative to "
        "the bot confirming it (%d frames arrived after onset); goal 100 ms",
        stop_from_onset * 1000, stop_from_detection * 1000, after_onset,
    )
    assert stop_from_onset < STOP_GUARD_S, stop_from_onset

    # Nothing more of the long answer was synthesised after the barge-in, and what was in flight
    # was abandoned: those TTS streams (and the chat stream) never completed.
    long_speech = [r for r in fake_mistral.requests_to("speech") if r.body["input"] in SENTENCES]
    assert [r.body["input"] for r in long_speech] == [s for s in speech_at_barge_in if s in SENTENCES]
    assert len(long_speech) < len(SENTENCES)
    assert any(r.abandoned for r in long_speech), [(r.status, r.abandoned) for r in long_speech]
    long_chat = fake_mistral.requests_to("chat")[0]
    assert long_chat.abandoned  # closed while the fake was still writing it

    # History: the question, what was actually said of the long answer (interrupted), then the
    # new question and its full answer.
    roles = [(t.role, t.text) for t in turns[-4:]]
    assert [role for role, _ in roles] == ["user", "assistant", "user", "assistant"], roles
    assert roles[0][1] == QUESTION and roles[2][1] == INTERRUPTION and roles[3][1] == SHORT_ANSWER
    partial = turns[-3]
    assert partial.interrupted
    spoken = partial.text.rstrip("…")
    assert spoken and LONG_ANSWER.startswith(spoken) and len(partial.text) < len(LONG_ANSWER), partial.text
    # Cut where playback stopped: the words kept are about the share of speech heard (~15
    # characters a second in the fake's speech, the frames that arrived at 20 ms each).
    heard_s = len(long_answer_arrivals) * 0.020
    assert abs(len(spoken) * 0.065 - heard_s) < 1.0, (len(spoken), heard_s)
    assert not turns[-1].interrupted
    speech_after = [r.body["input"] for r in fake_mistral.requests_to("speech")]
    assert speech_after[-1] == SHORT_ANSWER
    assert not fake_discord.unhandled
