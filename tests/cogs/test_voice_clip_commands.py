"""/voice set|show|reset through the loopback Discord: real discord.py, real storage, real decoding."""

from __future__ import annotations

import hashlib
import io
import wave
from pathlib import Path

import numpy as np
import pytest

from bot.audio.clip import ClipRejected, normalise_clip
from cogs.voice_clip import CONSENT_ID
from tests.bot.audio.media import encode_audio, wav_bytes
from tests.bot.audio.test_clip import HOSTILE, LIMITS, _good_wav
from tests.fakes.discord import Attachment, FakeDiscord
from tests.fakes.discord.interactions import Reply
from tests.fakes.synth import speech_like, to_int16
from tests.harness import build_world, running_bot, settings_for

EPHEMERAL = 64


def speech_wav(seconds: float = 6.0, rate: int = 48_000) -> bytes:
    return wav_bytes(to_int16(speech_like(seconds, rate)), rate)


async def set_voice(
    fake: FakeDiscord, *, guild_id: int, admin_id: int, clip: Attachment, channel_id: int | None = None
) -> Reply:
    """/voice set, then the admin confirms the speaker's consent; returns the confirmation's reply."""
    prompt = await (await fake.invoke(
        guild_id=guild_id, user_id=admin_id, command="admin voice set", options={"clip": clip}, channel_id=channel_id,
    )).wait_reply(timeout=20)
    assert any(c.get("custom_id") == CONSENT_ID for row in prompt.components for c in row.get("components", [])), (
        prompt.content)
    click = await fake.click(prompt.message_id, CONSENT_ID, user_id=admin_id)
    return await click.wait_reply(timeout=10)


@pytest.fixture
def world(fake_discord: FakeDiscord, fake_discord_env: dict[str, str]):
    return build_world(fake_discord)


async def test_admin_sets_a_voice_and_it_is_normalised_and_stored(fake_discord, world, tmp_path: Path) -> None:
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        clip = encode_audio(speech_like(8.0, 48_000), 48_000, fmt="ogg", codec="libopus")
        record = await fake_discord.invoke(
            guild_id=world.guild.id, user_id=world.admin_id, command="admin voice set",
            options={"clip": Attachment("me.ogg", clip, content_type="audio/ogg")},
            channel_id=world.text.id,
        )
        prompt = await record.wait_reply(timeout=20)
        assert record.deferred, "a clip is decoded before answering: the interaction must be deferred"
        assert prompt.flags & EPHEMERAL and "agreed" in prompt.content
        assert await bot.database.clips.get(world.guild.id) is None, "nothing is stored before consent"
        reply = await (await fake_discord.click(
            prompt.message_id, CONSENT_ID, user_id=world.admin_id)).wait_reply(timeout=10)
        assert reply.flags & EPHEMERAL
        assert "Voice set" in reply.content and "8.0 s" in reply.content
        assert str(world.admin_id) in reply.content  # who set it

        stored = await bot.database.clips.get(world.guild.id)
        assert stored is not None
        assert stored.set_by_id == world.admin_id and stored.set_by_name == "alice"
        assert stored.sha256 == hashlib.sha256(stored.audio).hexdigest()
        with wave.open(io.BytesIO(stored.audio)) as wav:
            assert (wav.getnchannels(), wav.getframerate()) == (1, 24_000)
            assert abs(wav.getnframes() / 24_000 - 8.0) < 0.3
    assert not fake_discord.unhandled


async def test_member_without_manage_server_cannot_set_a_voice(fake_discord, world, tmp_path: Path) -> None:
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        record = await fake_discord.invoke(
            guild_id=world.guild.id, user_id=world.member_id, command="admin voice set",
            options={"clip": Attachment("me.wav", speech_wav(), content_type="audio/wav")},
        )
        reply = await record.wait_reply(timeout=10)
        assert reply.flags & EPHEMERAL
        assert "Manage Server" in reply.content or "Manage Guild" in reply.content
        assert await bot.database.clips.get(world.guild.id) is None
        assert not fake_discord.cdn.downloads, "nothing is downloaded for a member who may not set a voice"


@pytest.mark.parametrize(
    ("filename", "data", "content_type", "expected"),
    [
        ("picture.mp3", b"\x89PNG\r\n\x1a\n" + bytes(4000), "audio/mpeg", "audio"),
        ("silence.wav", wav_bytes(np.zeros(48_000 * 4, dtype=np.int16), 48_000), "audio/wav", "silen"),
        ("short.wav", wav_bytes(to_int16(speech_like(0.8, 48_000)), 48_000), "audio/wav", "at least 2 s"),
    ],
)
async def test_bad_clips_are_refused_with_a_reason_and_nothing_is_stored(
    fake_discord, world, tmp_path: Path, filename: str, data: bytes, content_type: str, expected: str
) -> None:
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        record = await fake_discord.invoke(
            guild_id=world.guild.id, user_id=world.admin_id, command="admin voice set",
            options={"clip": Attachment(filename, data, content_type=content_type)},
        )
        reply = await record.wait_reply(timeout=20)
        assert reply.flags & EPHEMERAL
        assert expected in reply.content.lower(), reply.content
        assert await bot.database.clips.get(world.guild.id) is None


async def test_oversized_clip_is_refused_before_download(fake_discord, world, tmp_path: Path) -> None:
    settings = settings_for(fake_discord, tmp_path, clip_max_bytes=1_000_000)
    async with running_bot(fake_discord, settings) as bot:
        record = await fake_discord.invoke(
            guild_id=world.guild.id, user_id=world.admin_id, command="admin voice set",
            options={"clip": Attachment("big.wav", b"RIFF" + bytes(100), size=50_000_000)},
        )
        reply = await record.wait_reply(timeout=10)
        assert "limit" in reply.content
        assert not fake_discord.cdn.downloads
        assert await bot.database.clips.get(world.guild.id) is None


async def test_a_lying_size_field_never_reads_past_the_limit(fake_discord, world, tmp_path: Path) -> None:
    # A real 50 MB upload whose payload claims 1000 bytes, against the default 10 MiB limit.
    limit = 10 * 1024 * 1024
    liar = speech_wav(10.0) + bytes(50_000_000)
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        assert bot.settings.clip_max_bytes == limit
        record = await fake_discord.invoke(
            guild_id=world.guild.id, user_id=world.admin_id, command="admin voice set",
            options={"clip": Attachment("liar.wav", liar, size=1000)},
        )
        reply = await record.wait_reply(timeout=30)
        assert "larger than" in reply.content
        assert await bot.database.clips.get(world.guild.id) is None
    (sent,) = fake_discord.cdn.sent.values()
    # The bot dropped the download at the limit: what its TCP acknowledged is the limit plus what
    # the loopback socket buffers took meanwhile (11-16 MB measured), far from the whole file.
    assert limit < sent < len(liar) // 2, sent


async def test_show_returns_the_stored_clip_and_reset_removes_it(fake_discord, world, tmp_path: Path) -> None:
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        empty = await (await fake_discord.invoke(
            guild_id=world.guild.id, user_id=world.member_id, command="voice show")).wait_reply(timeout=10)
        assert "No voice is set" in empty.content

        await set_voice(fake_discord, guild_id=world.guild.id, admin_id=world.admin_id,
                        clip=Attachment("me.wav", speech_wav(), content_type="audio/wav"))
        stored = await bot.database.clips.get(world.guild.id)
        assert stored is not None

        # A member sees who set the voice and when, but not the recording itself.
        told = await (await fake_discord.invoke(
            guild_id=world.guild.id, user_id=world.member_id, command="voice show")).wait_reply(timeout=10)
        assert told.flags & EPHEMERAL
        assert "alice" in told.content and f"<t:{int(stored.set_at.timestamp())}:f>" in told.content
        assert not told.files and not told.attachments
        # Only Manage Server gets the clip file.
        shown = await (await fake_discord.invoke(
            guild_id=world.guild.id, user_id=world.admin_id, command="voice show")).wait_reply(timeout=10)
        assert shown.flags & EPHEMERAL
        assert "alice" in shown.content
        assert [f.data for f in shown.files] == [stored.audio]

        denied = await (await fake_discord.invoke(
            guild_id=world.guild.id, user_id=world.member_id, command="admin voice reset")).wait_reply(timeout=10)
        assert "Manage" in denied.content
        assert await bot.database.clips.get(world.guild.id) is not None

        reset = await (await fake_discord.invoke(
            guild_id=world.guild.id, user_id=world.admin_id, command="admin voice reset")).wait_reply(timeout=10)
        assert "deleted" in reset.content
        assert await bot.database.clips.get(world.guild.id) is None


async def test_voice_survives_a_restart(fake_discord, world, tmp_path: Path) -> None:
    settings = settings_for(fake_discord, tmp_path)
    async with running_bot(fake_discord, settings):
        await set_voice(fake_discord, guild_id=world.guild.id, admin_id=world.admin_id,
                        clip=Attachment("me.wav", speech_wav(), content_type="audio/wav"))
    async with running_bot(fake_discord, settings) as bot:
        stored = await bot.database.clips.get(world.guild.id)
        assert stored is not None and stored.set_by_name == "alice"


async def test_the_whole_hostile_corpus_through_voice_set_is_refused_with_each_files_reason(
    fake_discord, world, tmp_path: Path
) -> None:
    # The corpus of tests/bot/audio/test_clip.py, uploaded for real through the fake Discord to one
    # running bot, one after the other: each gets its own reason, nothing is stored, no consent is
    # offered, and the bot is still fine afterwards (a good clip is then accepted).
    settings = settings_for(fake_discord, tmp_path, rate_user_commands_per_minute=100)  # 21 commands in a row
    async with running_bot(fake_discord, settings) as bot:
        for case, (make, _code) in HOSTILE.items():
            data = make()
            if not data:
                expected = "empty"
            elif len(data) > LIMITS.max_bytes:
                expected = "larger than"
            else:
                try:
                    normalise_clip(data, LIMITS)
                except ClipRejected as rejected:
                    expected = rejected.reason
                else:
                    raise AssertionError(f"{case} is not hostile")
            record = await fake_discord.invoke(
                guild_id=world.guild.id, user_id=world.admin_id, command="admin voice set",
                options={"clip": Attachment(f"{case}.mp3", data, content_type="audio/mpeg")},
            )
            reply = await record.wait_reply(timeout=30)
            assert reply.flags & EPHEMERAL, case
            assert expected in reply.content, (case, reply.content)
            assert not reply.components, f"{case}: no consent button for a refused clip"
        assert await bot.database.clips.get(world.guild.id) is None
        good = await (await fake_discord.invoke(
            guild_id=world.guild.id, user_id=world.admin_id, command="admin voice set",
            options={"clip": Attachment("good.wav", _good_wav(), content_type="audio/wav")},
        )).wait_reply(timeout=30)
        assert "is usable" in good.content and good.components
