"""Spending through the real bot and both fakes: nothing reaches STT that should not.

- Noise alone opens no utterance, so it costs nothing: no realtime session, no batch request.
- A turn is accounted: STT seconds, chat tokens and TTS characters land in the usage table, priced.
- A guild at its monthly budget is told once, and no audio of any later utterance is sent to STT
  until an admin lifts the budget.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from tests.e2e.conversation_support import call_in_progress, wait_turns
from tests.fakes.synth import pink_noise, spoken_question, stereo, to_int16, white_noise
from tests.harness import build_world

QUESTION = "What is the capital of France?"
ANSWER = "Paris is the capital of France."


def noise(seconds: float) -> bytes:
    rate = 48_000
    mono = white_noise(seconds, rate, level=0.02) + pink_noise(seconds, rate, level=0.02)
    return stereo(to_int16(mono)).reshape(-1, 2)


def question_then_quiet(seed: int) -> np.ndarray:
    """A question followed by a second of digital silence: the segmenter ends the utterance on
    those frames, so the next question is its own utterance whatever the timing."""
    return np.concatenate([spoken_question(seed=seed), np.zeros((48_000, 2), dtype=np.int16)])


def stt_requests(fake_mistral) -> int:
    return len(fake_mistral.realtime_sessions) + len(fake_mistral.requests_to("transcriptions"))


async def test_noise_costs_nothing_and_a_turn_is_accounted(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    fake_mistral.transcribe = lambda _audio: QUESTION
    fake_mistral.reply = lambda _messages: ANSWER
    world = build_world(fake_discord)
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path, world=world) as call:
        await call.speaker.speak(noise(3.0))
        await call.speaker.speak(spoken_question())
        await wait_turns(call.bot, world.guild.id, 2)
        await call.fake_voice.bot_audio(world.guild.id).wait_for_silence()
        summary = await call.bot.database.usage.summary(world.guild.id, _long_ago())

    assert stt_requests(fake_mistral) == 1, "only the spoken question went to STT, never the noise"
    assert set(summary) == {"stt_seconds", "chat_input_tokens", "chat_output_tokens", "tts_characters"}
    assert 1.0 < summary["stt_seconds"][0] < 3.0, "seconds of the utterance, not of the noise"
    assert summary["tts_characters"][0] == len(ANSWER)
    assert all(cost > 0 for _quantity, cost in summary.values())


async def test_a_spent_budget_is_announced_once_and_nothing_goes_to_stt(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    fake_mistral.transcribe = lambda _audio: QUESTION
    fake_mistral.reply = lambda _messages: ANSWER
    world = build_world(fake_discord)
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path, world=world) as call:
        set_budget = await (await fake_discord.invoke(
            guild_id=world.guild.id, user_id=world.admin_id, command="admin usage budget", options={"usd": 0.0},
        )).wait_reply(timeout=10)
        assert "$0.00" in set_budget.content
        await call.speaker.speak(question_then_quiet(1))
        await call.speaker.speak(question_then_quiet(2))
        await call.speaker.speak(question_then_quiet(3))
        # Lifting the budget lets the next question through; by then the three above were refused.
        await (await fake_discord.invoke(
            guild_id=world.guild.id, user_id=world.admin_id, command="admin usage budget")).wait_reply(timeout=10)
        await call.speaker.speak(question_then_quiet(4))
        await wait_turns(call.bot, world.guild.id, 2)

    notices = [m for m in fake_discord.sent_messages if "budget" in str(m.get("content", ""))]
    assert len(notices) == 1, notices
    assert stt_requests(fake_mistral) == 1, "refused utterances are dropped before STT"


def _long_ago() -> dt.datetime:
    return dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
