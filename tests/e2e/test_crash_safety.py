"""Crash safety of the real process: ``python -m bot`` in a subprocess, the fakes in this one.

- SIGKILL in the middle of a spoken reply, then a restart: every committed turn is there, the
  database passes SQLite's integrity check and holds no half-written row.
- SIGTERM: the bot leaves voice (op 4 with channel null) and exits 0 within 10 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from tests.fakes.discord import FakeDiscord
from tests.fakes.mistral import FakeMistral
from tests.fakes.synth import spoken_question
from tests.fakes.voice.rtp import OPUS_SILENCE
from tests.fakes.voice.speaker import SimulatedSpeaker
from tests.harness import TEST_DISCORD_TOKEN, World, build_world

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "What is the capital of France?"
ANSWER = "Paris is the capital of France. It sits on the river Seine. It is lovely in spring."


def bot_env(fake_discord: FakeDiscord, fake_mistral: FakeMistral, database: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DISCORD_", "MISTRAL_"))}
    env.update(fake_discord.settings_env())
    env.update({
        "DISCORD_TOKEN": TEST_DISCORD_TOKEN, "MISTRAL_API_KEY": fake_mistral.api_key,
        "MISTRAL_SERVER_URL": fake_mistral.url, "DATABASE_URL": f"sqlite:///{database}",
        # DEBUG: the fullest log, which the suite-wide secrets check searches (tests/secrets_check.py).
        "LOG_LEVEL": "DEBUG", "PYTHONUNBUFFERED": "1",
        # The harmonic stand-in voice these tests speak is what SpectralVad was calibrated on;
        # Silero (the default) rightly hears no speech in it. Crash safety is the point here.
        "VAD": "spectral",
    })
    return env


@contextlib.asynccontextmanager
async def bot_process(env: dict[str, str], log_path: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", cwd=ROOT, env=env, stdout=log, stderr=log,
        )
        try:
            yield process
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def join(fake_discord: FakeDiscord, fake_voice, world: World) -> None:
    reply = await (await fake_discord.invoke(
        guild_id=world.guild.id, user_id=world.member_id, command="join", channel_id=world.text.id,
    )).wait_reply(timeout=30)
    assert "Joined" in reply.content, reply.content
    await fake_voice.wait_connected(world.guild.id)
    await fake_voice.wait_dave_settled(world.guild.id)


@dataclass
class ProcessCall:
    world: World
    database: Path
    env: dict[str, str]
    process: asyncio.subprocess.Process
    speaker: SimulatedSpeaker


@contextlib.asynccontextmanager
async def call_in_a_bot_process(
    fake_discord: FakeDiscord, fake_voice, fake_mistral: FakeMistral, tmp_path: Path
) -> AsyncIterator[ProcessCall]:
    """``python -m bot`` in voice with one member, who will ask QUESTION and be told ANSWER."""
    fake_mistral.transcribe = lambda _audio: QUESTION
    fake_mistral.reply = lambda _messages: ANSWER
    world = build_world(fake_discord)
    await fake_discord.set_voice_state(world.guild.id, world.member_id, world.voice.id)
    database = tmp_path / "voxcord.db"
    env = bot_env(fake_discord, fake_mistral, database)
    async with bot_process(env, tmp_path / "bot.log") as process:
        await fake_discord.wait_ready(timeout=30)
        speaker = fake_voice.add_speaker(world.guild.id, world.voice.id, world.member_id)
        await join(fake_discord, fake_voice, world)
        yield ProcessCall(world, database, env, process, speaker)


def read_turns(database: Path) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return connection.execute(
            "SELECT role, speaker_name, text, interrupted FROM turns ORDER BY id").fetchall()


async def test_sigkill_mid_reply_keeps_every_committed_turn(
    fake_discord, fake_voice, fake_mistral, tmp_path: Path
) -> None:
    async with call_in_a_bot_process(fake_discord, fake_voice, fake_mistral, tmp_path) as call:
        world, database, env, process, speaker = call.world, call.database, call.env, call.process, call.speaker
        await speaker.speak(spoken_question(seed=1))
        await fake_voice.bot_audio(world.guild.id).wait_for_silence()
        # The second answer's speech trickles out, so the kill lands mid-reply: once its first
        # audio reached the channel (a speech request alone may be a reply prepared on the
        # server's eager end of turn, not yet confirmed, whose question is not stored yet).
        fake_mistral.latency.tts_chunk_interval = 0.5
        audio = fake_voice.bot_audio(world.guild.id)
        heard = sum(1 for frame in audio.frames if frame.opus != OPUS_SILENCE)
        await speaker.speak(spoken_question(seed=2))
        async with asyncio.timeout(30):
            while sum(1 for frame in audio.frames if frame.opus != OPUS_SILENCE) <= heard:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        assert await process.wait() == -signal.SIGKILL

    turns = await asyncio.to_thread(read_turns, database)
    roles = [role for role, *_ in turns]
    assert roles[:3] == ["user", "assistant", "user"], turns
    assert turns[1][2] == ANSWER
    assert turns[2][2] == QUESTION, "the question being answered was committed before the reply"
    assert all(text for _role, _name, text, _interrupted in turns), "no empty (half-written) rows"

    # A restart opens the same file and serves the history.
    async with bot_process(env, tmp_path / "bot.log"):
        await fake_discord.wait_ready(timeout=30)
        shown = await (await fake_discord.invoke(
            guild_id=world.guild.id, user_id=world.member_id, command="history show")).wait_reply(timeout=30)
        assert shown.content.count("capital of France") >= 3, shown.content  # 2 questions + 1 answer


async def test_sigterm_leaves_voice_and_exits_cleanly(fake_discord, fake_voice, fake_mistral, tmp_path: Path) -> None:
    world = build_world(fake_discord)
    await fake_discord.set_voice_state(world.guild.id, world.member_id, world.voice.id)
    env = bot_env(fake_discord, fake_mistral, tmp_path / "voxcord.db")
    async with bot_process(env, tmp_path / "bot.log") as process:
        await fake_discord.wait_ready(timeout=30)
        await join(fake_discord, fake_voice, world)
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):  # the operator's contract: gone within 10 s
            code = await process.wait()
    assert code == 0, (tmp_path / "bot.log").read_text()
    leaves = [u for u in fake_discord.voice_state_updates
              if str(u.get("guild_id")) == str(world.guild.id) and u.get("channel_id") is None]
    assert leaves, fake_discord.voice_state_updates


async def test_sigterm_mid_reply_stores_what_was_said_and_its_usage_before_exiting(
    fake_discord, fake_voice, fake_mistral, tmp_path: Path
) -> None:
    async with call_in_a_bot_process(fake_discord, fake_voice, fake_mistral, tmp_path) as call:
        world, database, process, speaker = call.world, call.database, call.process, call.speaker
        # The answer's speech trickles out, so the signal lands while it is being spoken.
        fake_mistral.latency.tts_chunk_interval = 0.5
        await speaker.speak(spoken_question(seed=1))
        audio = fake_voice.bot_audio(world.guild.id)
        async with asyncio.timeout(30):
            while not audio.frames:
                await asyncio.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):  # the operator's contract: gone within 10 s
            code = await process.wait()
    assert code == 0, (tmp_path / "bot.log").read_text()

    turns = await asyncio.to_thread(read_turns, database)
    assert [(role, text) for role, _name, text, _interrupted in turns[:1]] == [("user", QUESTION)], turns
    (_role, _name, said, interrupted), = [t for t in turns if t[0] == "assistant"]
    assert interrupted and said and ANSWER.startswith(said.rstrip("…").rstrip()[:10]), turns
    with contextlib.closing(sqlite3.connect(database)) as connection:
        kinds = {kind for (kind,) in connection.execute("SELECT DISTINCT kind FROM usage_records")}
    assert {"stt_seconds", "chat_input_tokens", "tts_characters"} <= kinds, kinds
