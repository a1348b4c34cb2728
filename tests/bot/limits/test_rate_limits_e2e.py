"""A guild's own member turn rate through the real bot and both fakes (see test_spending_e2e.py).

An admin sets /usage member-turn-rate to 1: bob's second spoken question within the minute gets
one polite notice and sends nothing to STT, while alice, in the same call, is still answered.
"""

from __future__ import annotations

from pathlib import Path

from tests.bot.limits.test_spending_e2e import question_then_quiet, stt_requests
from tests.e2e.conversation_support import call_in_progress, wait_turns
from tests.harness import build_world

QUESTION = "What is the capital of France?"
ANSWER = "Paris."


async def test_a_member_over_the_guilds_member_turn_rate_is_told_once_and_others_are_answered(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    fake_mistral.transcribe = lambda _audio: QUESTION
    fake_mistral.reply = lambda _messages: ANSWER
    fake_mistral.tts_seconds_per_character = 0.02  # a short reply keeps the test quick
    world = build_world(fake_discord)
    # alice (the admin) is in the call before the bot joins; bob joins in call_in_progress.
    await fake_discord.set_voice_state(world.guild.id, world.admin_id, world.voice.id)
    alice = fake_voice.add_speaker(world.guild.id, world.voice.id, world.admin_id, seed=7)
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path, world=world) as call:
        # Two people in the channel: answer everything, so neither needs to say the bot's name.
        await call.bot.database.guilds.update(world.guild.id, addressing_mode="always")
        set_rate = await (await fake_discord.invoke(
            guild_id=world.guild.id, user_id=world.admin_id, command="admin usage member-turn-rate",
            options={"per_minute": 1},
        )).wait_reply(timeout=10)
        assert set_rate.ephemeral and "1 spoken question a minute from each member" in set_rate.content

        await call.speaker.speak(question_then_quiet(1))
        await wait_turns(call.bot, world.guild.id, 2)
        await fake_voice.bot_audio(world.guild.id).wait_for_silence()
        assert stt_requests(fake_mistral) == 1

        await call.speaker.speak(question_then_quiet(2))  # bob again, within the minute: refused
        await call.speaker.speak(question_then_quiet(3))  # and again: refused without a word
        await alice.speak(question_then_quiet(4))
        turns = await wait_turns(call.bot, world.guild.id, 4)

    users = [t.speaker_id for t in sorted(turns, key=lambda t: t.id or 0) if t.role == "user"]
    assert users == [world.member_id, world.admin_id], "bob's first question and alice's; none of bob's later"
    notices = [str(m.get("content", "")) for m in fake_discord.sent_messages
               if "question a minute" in str(m.get("content", ""))]
    assert len(notices) == 1, notices
    assert f"<@{world.member_id}>" in notices[0] and "1 question a minute from one person" in notices[0]
    # Issue 12: a turn counts when it would reach the chat model, so bob's later questions were
    # transcribed (STT seconds only, metered) and then refused; none reached the chat model.
    assert stt_requests(fake_mistral) == 4
    assert len(fake_mistral.requests_to("chat")) == 2
