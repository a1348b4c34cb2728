"""Connections that change under the bot: it recovers or cleans up, and leaks nothing.

Leaks are checked where they would show: asyncio tasks the engine creates, FFmpeg child
processes (running or zombie), and the voice UDP socket.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tests.e2e.conversation_support import call_in_progress
from tests.fakes.synth import spoken_question

QUESTION = "Are you still there?"
ENGINE_TASK_PREFIXES = ("conversation-", "hearing-ticks", "answer", "transcribe", "tts-")


def engine_tasks() -> list[str]:
    return sorted(t.get_name() for t in asyncio.all_tasks()
                  if t.get_name().startswith(ENGINE_TASK_PREFIXES) and not t.done())


def ffmpeg_children() -> list[tuple[int, str]]:
    """Our FFmpeg child processes, zombies included (a zombie is a process nobody reaped)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2:].split()[:2]
        if int(ppid) == os.getpid() and "ffmpeg" in name:
            found.append((int(entry), state))
    return found


async def eventually(predicate, what: str, deadline: float = 15.0) -> None:
    async with asyncio.timeout(deadline):
        while not predicate():
            await asyncio.sleep(0.05)
    assert predicate(), what


async def answered_turns(call, count: int) -> None:
    async def enough() -> bool:
        turns = await call.bot.database.turns.recent(call.world.guild.id, limit=50)
        return sum(t.role == "assistant" for t in turns) >= count

    async with asyncio.timeout(20):
        while not await enough():
            await asyncio.sleep(0.05)


async def test_leave_releases_tasks_processes_and_socket(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    fake_mistral.transcribe = lambda _audio: QUESTION
    fake_mistral.reply = lambda _messages: "Yes, I am here. Still listening."
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path) as call:
        await call.speaker.speak(spoken_question())
        await answered_turns(call, 1)
        assert engine_tasks(), "the engine runs while in voice"
        socket = call.bot.sessions.get(call.world.guild.id).voice_client._connection.socket

        await (await fake_discord.invoke(
            guild_id=call.world.guild.id, user_id=call.world.member_id, command="leave")).wait_reply(timeout=10)

        await eventually(lambda: not engine_tasks(), f"engine tasks left: {engine_tasks()}")
        await eventually(lambda: not ffmpeg_children(), f"FFmpeg left: {ffmpeg_children()}")
        assert socket.fileno() == -1, "the voice UDP socket is closed"
        assert call.bot.engine.runtime(call.world.guild.id) is None


async def test_disconnected_by_discord_the_session_is_released(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path) as call:
        guild_id = call.world.guild.id
        assert call.bot.sessions.get(guild_id) is not None
        # What Discord sends when a moderator disconnects the bot or deletes its channel.
        await fake_discord.set_voice_state(guild_id, fake_discord.bot_user.id, None)

        await eventually(lambda: call.bot.sessions.get(guild_id) is None, "session released")
        await eventually(lambda: not engine_tasks(), f"engine tasks left: {engine_tasks()}")
        assert call.bot.engine.runtime(guild_id) is None
        assert not ffmpeg_children()

        # /join works again afterwards.
        reply = await (await fake_discord.invoke(
            guild_id=guild_id, user_id=call.world.member_id, command="join",
            channel_id=call.world.text.id)).wait_reply(timeout=20)
        assert "Joined" in reply.content
        await eventually(lambda: call.bot.sessions.get(guild_id) is not None, "joined again")


async def test_a_gateway_resume_mid_call_keeps_the_conversation(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    fake_mistral.transcribe = lambda _audio: QUESTION
    fake_mistral.reply = lambda _messages: "Yes. Still here."
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path) as call:
        resumes = len(fake_discord.gateway.resumes)
        await fake_discord.request_reconnect()
        await eventually(lambda: len(fake_discord.gateway.resumes) > resumes, "the gateway resumed")

        assert call.bot.sessions.get(call.world.guild.id) is not None
        await call.speaker.speak(spoken_question())
        await answered_turns(call, 1)
        assert len(fake_discord.gateway.identifies) == 1, "resumed, not re-identified"


async def test_moved_by_an_admin_the_session_follows(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path) as call:
        guild_id, target = call.world.guild.id, call.world.other_voice.id
        tasks_before = engine_tasks()
        socket = call.bot.sessions.get(guild_id).voice_client._connection.socket
        await fake_discord.set_voice_state(guild_id, fake_discord.bot_user.id, target)
        await eventually(lambda: call.bot.sessions.get(guild_id).channel_id == target, "session follows the move")
        status = await (await fake_discord.invoke(
            guild_id=guild_id, user_id=call.world.member_id, command="status")).wait_reply(timeout=10)
        assert f"<#{target}>" in status.content

        # One engine still (the move did not start a second), and leaving releases all of it.
        # (Hearing a member who follows into the new channel is not modelled by the fake voice
        # server: its simulated speakers do not move with the bot's session.)
        await eventually(lambda: engine_tasks() == tasks_before, f"{engine_tasks()} != {tasks_before}")

        await (await fake_discord.invoke(
            guild_id=guild_id, user_id=call.world.member_id, command="leave")).wait_reply(timeout=10)
        await eventually(lambda: not engine_tasks(), f"engine tasks left: {engine_tasks()}")
        await eventually(lambda: not ffmpeg_children(), f"FFmpeg left: {ffmpeg_children()}")
        assert socket.fileno() == -1, "the voice UDP socket of the first channel is closed"
