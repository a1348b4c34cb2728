"""Issue 7 ("Privacy") end to end: the real bot through the fake Discord (voice with a real DAVE
group) and the fake Mistral.

What is proven here: the join notice and the listening nickname; an opted-out member's packets
are dropped before decryption and decoding, so no byte of theirs reaches the speech-to-text
service (the fake Mistral sees no request and no realtime session at all); opting back in restores
hearing without rejoining; consent mode ``opt_in`` hears nobody who has not opted in; and after a
full spoken turn no captured audio is anywhere in the data directory or the database.
``GUARD_S`` deadlines only turn a hang into a readable failure; nothing asserts on timing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np

from bot.app import VoxcordBot
from bot.store.models import Turn
from bot.voice.client import VoxcordVoiceClient
from tests.e2e.conversation_support import Call, call_in_progress
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.model import CHANGE_NICKNAME
from tests.fakes.mistral import FakeMistral
from tests.fakes.synth import spoken_question
from tests.fakes.voice import FakeVoiceServer
from tests.harness import World, build_world, running_bot, settings_for

GUARD_S = 20.0
QUESTION = "What time is it in Lisbon?"
AUDIO_SUFFIXES = {".wav", ".pcm", ".raw", ".opus", ".ogg", ".oga", ".mp3", ".flac", ".webm", ".m4a"}
AUDIO_MAGIC = (b"RIFF", b"OggS", b"fLaC", b"ID3", b"\x1a\x45\xdf\xa3")


async def until(predicate: Callable[[], bool]) -> None:
    """Poll a condition the fakes or the receiver's counters will reach (no event exposes it)."""
    async with asyncio.timeout(GUARD_S):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.02)


async def stored_turns(bot: VoxcordBot, guild_id: int, count: int, speaker_id: int | None = None) -> list[Turn]:
    async with asyncio.timeout(GUARD_S):
        while True:
            if speaker_id is None:
                turns = await bot.database.turns.recent(guild_id, limit=50)
            else:
                turns = await bot.database.turns.for_speaker(guild_id, speaker_id)
            if len(turns) >= count:
                return turns
            await asyncio.sleep(0.05)


async def run(fake: FakeDiscord, world: World, user_id: int, command: str, **options: object):
    return await (await fake.invoke(
        guild_id=world.guild.id, user_id=user_id, command=command, options=options or None,
        channel_id=world.text.id,
    )).wait_reply(timeout=GUARD_S)


def voice_client(bot: VoxcordBot, guild_id: int) -> VoxcordVoiceClient:
    session = bot.sessions.get(guild_id)
    assert session is not None and isinstance(session.voice_client, VoxcordVoiceClient)
    return session.voice_client


def notices(fake: FakeDiscord, channel_id: int) -> list[str]:
    return [m["content"] for m in fake.sent_messages
            if m["channel_id"] == str(channel_id) and "Privacy notice" in m["content"]]


@contextlib.asynccontextmanager
async def bot_then_call(
    fake_discord: FakeDiscord, fake_voice: FakeVoiceServer, fake_mistral: FakeMistral, data_dir: Path,
    world: World, before_join: Callable[[VoxcordBot], object] | None = None,
) -> AsyncIterator[Call]:
    settings = settings_for(fake_discord, data_dir, mistral_server_url=fake_mistral.url,
                            mistral_api_key=fake_mistral.api_key)
    async with running_bot(fake_discord, settings) as bot:
        if before_join is not None:
            await before_join(bot)  # type: ignore[misc]
        async with call_in_progress(fake_discord, fake_voice, fake_mistral, data_dir, world=world, bot=bot) as call:
            yield call


async def test_joining_posts_the_notice_and_marks_the_nickname_until_it_leaves(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    world = build_world(fake_discord)
    me = world.guild.member(fake_discord.bot_user.id)
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path, world=world) as call:
        # The notice is posted before /join answers, in the channel /join was used in.
        [notice] = notices(fake_discord, world.text.id)
        host = fake_mistral.url.split("://", 1)[1].rstrip("/")
        for needed in (f"<#{world.voice.id}>", "Mistral", f"`{host}`", "never stored", "30 days", "retention",
                       "/privacy optout", "except members who opted out"):
            assert needed in notice, needed
        assert fake_mistral.api_key not in notice
        assert me.nick == "Voxcord (listening)"

        left = await run(fake_discord, world, world.member_id, "leave")
        assert "Left" in left.content
        assert me.nick is None  # restored: the bot had no nickname before
        assert not call.fake_discord.unhandled
    nick_edits = [r.body["nick"] for r in fake_discord.rest.requests
                  if r.method == "PATCH" and r.path.endswith(f"/guilds/{world.guild.id}/members/@me")]
    assert nick_edits == ["Voxcord (listening)", ""]


async def test_without_change_nickname_it_still_joins_and_posts_the_notice(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    world = build_world(fake_discord)
    world.guild.everyone.permissions &= ~CHANGE_NICKNAME
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path, world=world):
        assert len(notices(fake_discord, world.text.id)) == 1
        await run(fake_discord, world, world.member_id, "leave")
    assert not [r for r in fake_discord.rest.requests if r.path.endswith("/members/@me")]
    assert world.guild.member(fake_discord.bot_user.id).nick is None


async def test_an_opted_out_member_is_never_decoded_or_transcribed_until_they_opt_back_in(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    fake_mistral.transcribe = lambda _audio: QUESTION
    world = build_world(fake_discord)
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path, world=world) as call:
        out = await run(fake_discord, world, world.member_id, "privacy optout")
        assert "Opted out" in out.content
        client = voice_client(call.bot, world.guild.id)
        receiver, stats = client.receiver, client.receive_stats

        sent = await call.speaker.speak(spoken_question(seed=5))
        # Every packet the member sent reached the receiver and was refused unopened.
        await until(lambda: receiver.refused_packets.get(world.member_id, 0) == len(sent))
        assert (stats.decrypted, stats.decoded, stats.concealed, stats.frames_out) == (0, 0, 0, 0)
        assert stats.dave.decrypted == 0
        runtime = call.bot.engine.runtime(world.guild.id)
        assert runtime is not None and runtime.hearing.speakers == frozenset()
        # Nothing was sent anywhere: not one request, not one realtime session.
        assert fake_mistral.requests == [] and fake_mistral.realtime_sessions == []
        assert await call.bot.database.turns.count(world.guild.id) == 0

        back = await run(fake_discord, world, world.member_id, "privacy optin")
        assert "Opted in" in back.content
        sent_again = await call.speaker.speak(spoken_question(seed=6))
        session = await asyncio.wait_for(fake_mistral.wait_for_realtime_session(0), GUARD_S)
        await until(lambda: bool(session.audio) and session.closed.is_set())
        assert receiver.refused_packets[world.member_id] == len(sent)  # none of the second utterance
        assert stats.decoded >= len(sent_again) - 5  # its speech frames were decoded
        turns = await stored_turns(call.bot, world.guild.id, 1, world.member_id)
        assert [t.text for t in turns] == [QUESTION]


async def test_opt_in_consent_mode_hears_nobody_who_has_not_opted_in(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    world = build_world(fake_discord)

    async def opt_in_mode(_bot: VoxcordBot) -> None:
        reply = await run(fake_discord, world, world.admin_id, "admin privacy consent-mode", mode="opt_in")
        assert "`opt_in`" in reply.content

    async with bot_then_call(fake_discord, fake_voice, fake_mistral, tmp_path, world, opt_in_mode) as call:
        [notice] = notices(fake_discord, world.text.id)
        assert "only members who opted in" in notice
        client = voice_client(call.bot, world.guild.id)
        sent = await call.speaker.speak(spoken_question(seed=8))
        await until(lambda: client.receiver.refused_packets.get(world.member_id, 0) == len(sent))
        assert client.receive_stats.decoded == 0
        assert fake_mistral.requests == [] and fake_mistral.realtime_sessions == []

        await run(fake_discord, world, world.member_id, "privacy optin")
        await call.speaker.speak(spoken_question(seed=9))
        await asyncio.wait_for(fake_mistral.wait_for_realtime_session(0), GUARD_S)
        assert client.receive_stats.decoded > 0


def _windows(data: bytes, size: int, count: int) -> list[bytes]:
    """``count`` evenly spread ``size``-byte slices of ``data`` that are not silence."""
    step = max(size, (len(data) - size) // count)
    picked = [data[i:i + size] for i in range(0, len(data) - size, step)]
    return [w for w in picked if len(set(w)) > 8]


async def test_no_captured_audio_is_stored_after_a_full_spoken_turn(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    fake_mistral.transcribe = lambda _audio: QUESTION
    fake_mistral.reply = lambda _messages: "It is noon in Lisbon."
    world = build_world(fake_discord)
    question = spoken_question(seed=11)
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path, world=world) as call:
        sent = await call.speaker.speak(question)
        turns = await stored_turns(call.bot, world.guild.id, 2)  # the question and the spoken answer
        assert [t.role for t in turns] == ["user", "assistant"]
        assert fake_mistral.requests_to("speech")
        session = fake_mistral.realtime_sessions[0]
        stt_audio = bytes(session.audio)  # exactly the PCM the bot captured and streamed
        assert len(stt_audio) > 16_000
        running_snapshot = _read_tree(tmp_path)  # database and its WAL while the bot runs

    at_rest = _read_tree(tmp_path)
    patterns = (
        _windows(stt_audio, 32, 200)  # 16 kHz mono as heard
        + _windows(np.ascontiguousarray(question).tobytes(), 64, 200)  # 48 kHz stereo as spoken
        + [f.opus for f in sent if len(f.opus) > 16]  # every Opus packet with speech in it
    )
    assert len(patterns) > 300
    for snapshot in (running_snapshot, at_rest):
        assert snapshot, "the data directory should hold the database"
        for path, data in snapshot.items():
            assert path.suffix.lower() not in AUDIO_SUFFIXES, path
            assert not data.startswith(AUDIO_MAGIC), path
            found = [p for p in patterns if p in data]
            assert not found, f"{path} holds {len(found)} pieces of captured audio"


def _read_tree(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}
