"""It answers: a simulated user speaks in voice, the real bot replies in the guild's voice.

Everything real but the services: discord.py against the fake Discord (with a real DAVE group),
the mistralai SDK against the fake Mistral, FFmpeg from the wheel encoding the reply to Opus.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from bot.store.models import Turn
from tests.cogs.test_voice_clip_commands import set_voice, speech_wav
from tests.e2e.conversation_support import (
    TTS_RATE,
    call_in_progress,
    dominant_frequency,
    prepared_clip,
    ref_audio_of,
    wait_turns,
)
from tests.fakes.discord import Attachment
from tests.fakes.mistral.audio import speech_samples
from tests.fakes.synth import spoken_question
from tests.harness import build_world

QUESTION = "What is the capital of France?"
ANSWER = "Paris is the capital of France. It sits on the river Seine."



async def test_a_spoken_question_gets_a_spoken_answer_in_the_guilds_voice(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    fake_mistral.transcribe = lambda _audio: QUESTION
    fake_mistral.reply = lambda _messages: ANSWER
    world = build_world(fake_discord)
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path, world=world) as call:
        # Earlier history and a cloned voice for this guild.
        earlier = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
        await call.bot.database.turns.add(Turn(
            id=None, guild_id=world.guild.id, speaker_id=world.admin_id, speaker_name="alice",
            role="user", text="My favourite city is Lyon.", created_at=earlier))
        await set_voice(fake_discord, guild_id=world.guild.id, admin_id=world.admin_id,
                        clip=Attachment("me.wav", speech_wav(), content_type="audio/wav"))
        # Registered once as a Mistral voice (the fake allows it, as a paid plan does).
        clip = await prepared_clip(call.bot, world.guild.id)
        assert clip.voice_id is not None

        await call.speaker.speak(spoken_question())
        turns = await wait_turns(call.bot, world.guild.id, 3)
        audio = call.fake_voice.bot_audio(world.guild.id)
        await audio.wait_for_silence()
        status = await (await fake_discord.invoke(
            guild_id=world.guild.id, user_id=world.member_id, command="status")).wait_reply(timeout=10)

    # The chat request carried the guild history and the speaker's name.
    chat = fake_mistral.requests_to("chat")[-1].body
    contents = "\n".join(str(m["content"]) for m in chat["messages"])
    assert "Lyon" in contents
    assert f"bob: {QUESTION}" in contents.lower() or f"bob: {QUESTION.lower()}" in contents.lower()
    # The TTS requests named the guild's registered voice (never the clip itself).
    speech = fake_mistral.requests_to("speech")
    assert speech and all(r.body.get("voice_id") == clip.voice_id and ref_audio_of(r.body) is None for r in speech)
    assert " ".join(r.body["input"] for r in speech) == ANSWER

    # History: the user's turn and the bot's full answer.
    assert [(t.role, t.speaker_name, t.text) for t in turns[-2:]] == [
        ("user", "bob", QUESTION), ("assistant", turns[-1].speaker_name, ANSWER)]
    assert not turns[-1].interrupted

    # What arrived on the wire is valid Opus whose audio is the fake TTS output (a 220 Hz tone).
    pcm = audio.decode()
    expected_seconds = sum(len(speech_samples(r.body["input"])) for r in speech) / TTS_RATE
    assert abs(len(pcm) / 48_000 - expected_seconds) < 0.25, (len(pcm) / 48_000, expected_seconds)
    assert abs(dominant_frequency(pcm, 48_000) - 220) < 5
    assert not fake_discord.unhandled

    # Every stage of the turn was timed and /status shows it.
    assert "Listening in" in status.content
    for label in ("final transcript", "first reply token", "first speech audio", "first packet sent"):
        assert label in status.content, status.content


async def test_two_guilds_at_once_keep_their_own_history_and_voice(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    fake_mistral.transcribe = lambda _audio: QUESTION
    fake_mistral.reply = lambda messages: "Guild reply. " + str(len(messages))
    first, second = build_world(fake_discord, "First"), build_world(fake_discord, "Second")
    async with (
        call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path, world=first) as one,
        call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path, world=second, bot=one.bot, seed=7) as two,
    ):
        await set_voice(fake_discord, guild_id=first.guild.id, admin_id=first.admin_id,
                        clip=Attachment("one.wav", speech_wav(seconds=5.0), content_type="audio/wav"))
        first_clip = await prepared_clip(one.bot, first.guild.id)

        await one.bot.database.turns.add(Turn(
            id=None, guild_id=first.guild.id, speaker_id=1, speaker_name="alice", role="user",
            text="Only the first guild knows about the blue door.",
            created_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC)))
        await asyncio.gather(one.speaker.speak(spoken_question(seed=3)),
                             two.speaker.speak(spoken_question(seed=4)))
        first_turns = await wait_turns(one.bot, first.guild.id, 3)
        second_turns = await wait_turns(one.bot, second.guild.id, 2)

    assert all(t.guild_id == first.guild.id for t in first_turns)
    assert all("blue door" not in t.text for t in second_turns)
    # The replies' chat streams, one per guild. A reply begun on our early end of turn and
    # withdrawn when the member went on (the fake transcribes every pause as the whole question)
    # is cancelled mid-stream and never completes; two guilds at once on a busy machine saw three.
    chats = [r.body for r in fake_mistral.requests_to("chat") if r.status == 200]
    assert len(chats) == 2
    with_door = [c for c in chats if "blue door" in str(c["messages"])]
    assert len(with_door) == 1
    speech = fake_mistral.requests_to("speech")
    voices = {r.body.get("voice_id") for r in speech}
    assert first_clip.voice_id in voices
    assert all(ref_audio_of(r.body) is None for r in speech)
    assert len(voices) == 2  # the second guild has no clip: the default (preset) voice



async def test_without_a_voice_it_answers_in_the_default_voice_and_says_once_how_to_set_one(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    fake_mistral.transcribe = lambda _audio: QUESTION
    fake_mistral.reply = lambda _messages: ANSWER
    world = build_world(fake_discord)
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path, world=world) as call:
        for turn, seed in enumerate((3, 4), start=1):
            await call.speaker.speak(spoken_question(seed=seed))
            await wait_turns(call.bot, world.guild.id, 2 * turn)
            await call.fake_voice.bot_audio(world.guild.id).wait_for_silence()
    hints = [m for m in fake_discord.sent_messages if "/admin voice set" in m.get("content", "")]
    assert len(hints) == 1, hints
    assert int(hints[0]["channel_id"]) == world.text.id
    speech = fake_mistral.requests_to("speech")
    assert speech and all(ref_audio_of(r.body) is None for r in speech)
