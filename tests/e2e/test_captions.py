"""Captions end to end: the real bot, the fake Discord (voice with a real DAVE group), the fake Mistral.

A moderator turns captions on for a channel; bob's questions and the bot's answers appear there a
turn at a time, batched, within Discord's per-channel send limit (the fake enforces 5 per 5 s and
records every 429); alice, who opted out, is never heard and so never captioned; turning captions
off stops them. ``GUARD_S`` deadlines only turn a hang into a readable failure.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.voice.client import VoxcordVoiceClient
from tests.e2e.conversation_support import call_in_progress, spoken_question, wait_turns
from tests.fakes.discord import FakeDiscord
from tests.harness import World, build_world, running_bot, settings_for

GUARD_S = 20.0
QUESTIONS = ["What is the capital of France?", "And the capital of Spain?", "Thanks, and of Italy?"]
ANSWER = "That one is easy. It is a lovely city."
SUPPRESS_NOTIFICATIONS = 1 << 12


async def run(fake: FakeDiscord, world: World, user_id: int, command: str, **options: object):
    return await (await fake.invoke(
        guild_id=world.guild.id, user_id=user_id, command=command, options=options or None,
        channel_id=world.text.id,
    )).wait_reply(timeout=GUARD_S)


def captions_in(fake: FakeDiscord, channel_id: int) -> list[dict]:
    return [m for m in fake.sent_messages if m["channel_id"] == str(channel_id)]


async def until(predicate) -> None:
    async with asyncio.timeout(GUARD_S):
        while not predicate():
            await asyncio.sleep(0.05)


async def test_turns_are_captioned_in_the_chosen_channel_never_an_opted_out_member(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    fake_mistral.transcribe = lambda _audio: QUESTIONS[0]
    fake_mistral.reply = lambda _messages: ANSWER
    fake_mistral.tts_seconds_per_character = 0.01
    fake_discord.channel_message_limit = (5, 5.0)  # Discord's per-channel send limit
    world = build_world(fake_discord)
    captions_channel = world.guild.add_text_channel("captions")
    await fake_discord.set_voice_state(world.guild.id, world.admin_id, world.voice.id)  # alice is in voice too
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path, world=world) as call:
        await run(fake_discord, world, world.admin_id, "admin settings addressing", mode="always")
        on = await run(fake_discord, world, world.admin_id, "admin settings captions", mode="on",
                       channel=captions_channel)
        assert "Captions are on" in on.content and f"<#{captions_channel.id}>" in on.content
        assert "Captions:** in" in (await run(fake_discord, world, world.member_id, "settings show")).content

        # alice opts out, then talks: every packet refused unopened, nothing transcribed.
        await run(fake_discord, world, world.admin_id, "privacy optout")
        alice = fake_voice.add_speaker(world.guild.id, world.voice.id, world.admin_id, seed=21)
        client = call.bot.sessions.get(world.guild.id).voice_client
        assert isinstance(client, VoxcordVoiceClient)
        sent = await alice.speak(spoken_question(0.8, seed=22))
        await until(lambda: client.receiver.refused_packets.get(world.admin_id, 0) == len(sent))

        # bob asks two questions, one right after the other.
        await call.speaker.speak(spoken_question(0.8, seed=23))
        await wait_turns(call.bot, world.guild.id, 2, deadline=GUARD_S)
        fake_mistral.transcribe = lambda _audio: QUESTIONS[1]
        await call.speaker.speak(spoken_question(0.8, seed=24))
        await wait_turns(call.bot, world.guild.id, 4, deadline=GUARD_S)
        await until(lambda: "capital of Spain" in "".join(m["content"] for m in captions_in(fake_discord,
                                                                                          captions_channel.id)))
        posted = captions_in(fake_discord, captions_channel.id)

        # Off: the next turn is stored but not captioned (leaving posts whatever waits, at once).
        off = await run(fake_discord, world, world.admin_id, "admin settings captions", mode="off")
        assert "off" in off.content
        fake_mistral.transcribe = lambda _audio: QUESTIONS[2]
        await call.speaker.speak(spoken_question(0.8, seed=25))
        await wait_turns(call.bot, world.guild.id, 6, deadline=GUARD_S)
        await run(fake_discord, world, world.member_id, "leave")

    text = "\n".join(m["content"] for m in posted)
    assert text.splitlines() == [
        f"**bob**: {QUESTIONS[0]}", f"**Voxcord**: {ANSWER}",
        f"**bob**: {QUESTIONS[1]}", f"**Voxcord**: {ANSWER}",
    ]
    assert "alice" not in text
    assert len(posted) <= 2  # a message per window at most, never one per line or per word
    assert all(m["flags"] & SUPPRESS_NOTIFICATIONS for m in posted)  # no ping every two seconds
    assert captions_in(fake_discord, captions_channel.id) == posted  # nothing once turned off
    assert QUESTIONS[2] not in "".join(m["content"] for m in fake_discord.sent_messages)
    assert fake_discord.rate_limited_messages == []
    assert (await call.bot.database.guilds.get(world.guild.id)).captions_channel_id is None


async def test_the_privacy_notice_says_captions_are_on_and_where(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    world = build_world(fake_discord)
    captions_channel = world.guild.add_text_channel("captions")
    settings = settings_for(fake_discord, tmp_path, mistral_server_url=fake_mistral.url,
                            mistral_api_key=fake_mistral.api_key)
    async with running_bot(fake_discord, settings) as bot:
        await run(fake_discord, world, world.admin_id, "admin settings captions", mode="on", channel=captions_channel)
        async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path, world=world, bot=bot):
            [notice] = [m["content"] for m in fake_discord.sent_messages if "Privacy notice" in m["content"]]
    assert f"**Captions are on:** what I hear, and my replies, are also posted as text in <#{captions_channel.id}>" \
        in notice
