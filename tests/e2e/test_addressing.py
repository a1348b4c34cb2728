"""Addressing: with several people in the channel the bot answers only what is said to it.

Everything real but the services (see test_conversation.py). Two humans, alice and bob, share the
voice channel; bob speaks. "Not answered" is never asserted by waiting: each test ends with an
utterance that is answered, and by then the earlier ones have long been decided.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.e2e.conversation_support import Call, call_in_progress, wait_turns
from tests.fakes.mistral import FakeMistral
from tests.fakes.synth import spoken_question
from tests.harness import World, build_world

GUARD_S = 20.0  # hang guard only

ASIDE = "Did you feed the cat this morning?"
ADDRESSED = "Voxcord, what should we cook tonight?"
ANSWER = "How about a mushroom risotto."


async def say(call: Call, text: str, *, seed: int) -> None:
    """Bob says something the fake transcribes as ``text``; returns once its transcript is final."""
    fake = call.fake_mistral
    index = len(fake.realtime_sessions)
    fake.transcribe = lambda _audio: text
    fake.tts_seconds_per_character = 0.02  # short replies keep the tests quick
    await call.speaker.speak(spoken_question(0.7, seed=seed))
    async with asyncio.timeout(GUARD_S):
        session = await fake.wait_for_realtime_session(index)
        while True:  # the fake has no event for what it sent; poll like wait_turns does
            if any(event["type"] == "transcription.done" for event in session.sent):
                return
            await asyncio.sleep(0.02)


async def two_humans_in_voice(fake_discord, world: World) -> None:
    # bob joins in call_in_progress; alice is already there.
    await fake_discord.set_voice_state(world.guild.id, world.admin_id, world.voice.id)


def chat_texts(fake: FakeMistral) -> list[str]:
    return ["\n".join(str(m["content"]) for m in r.body["messages"]) for r in fake.requests_to("chat")]


async def test_with_two_people_only_speech_naming_the_bot_is_answered_the_rest_is_context(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    fake_mistral.reply = lambda _messages: ANSWER
    world = build_world(fake_discord)
    await two_humans_in_voice(fake_discord, world)
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path, world=world) as call:
        assert (await call.bot.database.guilds.get(world.guild.id)).addressing_mode == "auto"
        await say(call, ASIDE, seed=2)
        context = await wait_turns(call.bot, world.guild.id, 1, deadline=GUARD_S)
        await say(call, ADDRESSED, seed=3)
        turns = await wait_turns(call.bot, world.guild.id, 3, deadline=GUARD_S)

    assert context[0].role == "context" and context[0].text == ASIDE
    assert [(t.role, t.text) for t in turns] == [("context", ASIDE), ("user", ADDRESSED), ("assistant", ANSWER)]
    assert turns[0].speaker_name == "bob"
    # One chat request, for the addressed utterance; the aside went along as overheard context.
    chats = chat_texts(fake_mistral)
    assert len(chats) == 1
    assert ASIDE in chats[0] and ADDRESSED in chats[0]
    assert [r.body["input"] for r in fake_mistral.requests_to("speech")] == [ANSWER]


async def test_addressing_mode_always_answers_everything_said(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    fake_mistral.reply = lambda _messages: ANSWER
    world = build_world(fake_discord)
    await two_humans_in_voice(fake_discord, world)
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path, world=world) as call:
        await call.bot.database.guilds.update(world.guild.id, addressing_mode="always")
        await say(call, ASIDE, seed=2)
        turns = await wait_turns(call.bot, world.guild.id, 2, deadline=GUARD_S)

    assert [(t.role, t.text) for t in turns] == [("user", ASIDE), ("assistant", ANSWER)]
    assert len(fake_mistral.requests_to("chat")) == 1


async def test_silence_or_noise_transcripts_start_no_turn(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    fake_mistral.reply = lambda _messages: ANSWER
    world = build_world(fake_discord)  # bob alone with the bot: anything with words is for it
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path, world=world) as call:
        await say(call, "", seed=2)
        await say(call, " ... ?! ", seed=4)
        await say(call, ADDRESSED, seed=3)
        turns = await wait_turns(call.bot, world.guild.id, 2, deadline=GUARD_S)

    assert [(t.role, t.text) for t in turns] == [("user", ADDRESSED), ("assistant", ANSWER)]
    assert len(fake_mistral.realtime_sessions) == 3  # all three were transcribed...
    assert len(fake_mistral.requests_to("chat")) == 1  # ...only one was a turn
    assert not fake_discord.sent_messages or all("Sorry" not in m.get("content", "")
                                                 for m in fake_discord.sent_messages)
