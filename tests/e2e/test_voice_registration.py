"""Issue 13: the guild's clip is registered once (paid plan) or sent as a compact reference (free
plan), never re-uploaded whole with every sentence; resetting or replacing it deletes the voice."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import av

from tests.cogs.test_voice_clip_commands import set_voice, speech_wav
from tests.e2e.conversation_support import call_in_progress, prepared_clip, ref_audio_of, wait_turns
from tests.fakes.discord import Attachment
from tests.fakes.synth import spoken_question

QUESTION = "What is the capital of France?"
ANSWER = "Paris is the capital of France. It sits on the river Seine."
RESET = "admin voice reset"


async def test_on_a_paid_plan_every_sentence_names_the_registered_voice_and_reset_deletes_it(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    fake_mistral.transcribe = lambda _audio: QUESTION
    fake_mistral.reply = lambda _messages: ANSWER
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path) as call:
        guild = call.world.guild.id
        await set_voice(fake_discord, guild_id=guild, admin_id=call.world.admin_id,
                        clip=Attachment("me.wav", speech_wav(seconds=25.0), content_type="audio/wav"))
        clip = await prepared_clip(call.bot, guild)
        assert clip.voice_id is not None and list(fake_mistral.voices) == [clip.voice_id]

        await call.speaker.speak(spoken_question())
        await wait_turns(call.bot, guild, 2)
        await call.fake_voice.bot_audio(guild).wait_for_silence()
        speech = fake_mistral.requests_to("speech")
        assert len(speech) == 2
        assert all(r.body.get("voice_id") == clip.voice_id and ref_audio_of(r.body) is None for r in speech)
        assert max(r.body_bytes for r in speech) < 1_000

        reply = await (await fake_discord.invoke(guild_id=guild, user_id=call.world.admin_id,
                                                 command=RESET)).wait_reply(timeout=10)
        assert "deleted" in reply.content.lower(), reply.content
        async with asyncio.timeout(10):
            while fake_mistral.voices:  # noqa: ASYNC110 - the deletion runs in the background
                await asyncio.sleep(0.05)


async def test_on_a_free_plan_each_sentence_carries_the_compact_reference_under_200_kb(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    fake_mistral.transcribe = lambda _audio: QUESTION
    fake_mistral.reply = lambda _messages: ANSWER
    fake_mistral.voice_creation_refused = 402
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path) as call:
        guild = call.world.guild.id
        await set_voice(fake_discord, guild_id=guild, admin_id=call.world.admin_id,
                        clip=Attachment("me.wav", speech_wav(seconds=30.0), content_type="audio/wav"))
        clip = await prepared_clip(call.bot, guild)
        assert clip.voice_id is None and clip.reference is not None and fake_mistral.voices == {}

        await call.speaker.speak(spoken_question())
        await wait_turns(call.bot, guild, 2)
        await call.fake_voice.bot_audio(guild).wait_for_silence()
    speech = fake_mistral.requests_to("speech")
    assert len(speech) == 2
    assert all(ref_audio_of(r.body) == clip.reference for r in speech)
    with av.open(io.BytesIO(clip.reference)) as container:
        assert container.format.name == "mp3"
    assert max(r.body_bytes for r in speech) <= 200_000 < len(clip.audio)


async def test_a_new_clip_replaces_the_registered_voice(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path) as call:
        guild, admin = call.world.guild.id, call.world.admin_id
        await set_voice(fake_discord, guild_id=guild, admin_id=admin,
                        clip=Attachment("one.wav", speech_wav(seconds=6.0), content_type="audio/wav"))
        first = await prepared_clip(call.bot, guild)
        await set_voice(fake_discord, guild_id=guild, admin_id=admin,
                        clip=Attachment("two.wav", speech_wav(seconds=9.0), content_type="audio/wav"))
        second = await prepared_clip(call.bot, guild, sha256=first.sha256)
        async with asyncio.timeout(10):
            while list(fake_mistral.voices) != [second.voice_id]:  # noqa: ASYNC110 - background deletion
                await asyncio.sleep(0.05)
        assert first.voice_id not in fake_mistral.voices
