"""Voice cloning needs the speaker's consent: /voice set stores nothing until the admin confirms.

Through the loopback Discord with real discord.py components: the prompt's buttons, who may
press them, what is kept (who confirmed, when, the sha256), and where the clip may appear.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest

from cogs.voice_clip import CANCEL_ID, CONSENT_ID, CONSENT_LABEL
from tests.cogs.test_voice_clip_commands import speech_wav
from tests.fakes.discord import Attachment, FakeDiscord
from tests.harness import build_world, running_bot, settings_for


@pytest.fixture
def world(fake_discord: FakeDiscord, fake_discord_env: dict[str, str]):
    return build_world(fake_discord)


def buttons(reply) -> dict[str, str]:
    return {c["custom_id"]: c.get("label", "") for row in reply.components for c in row.get("components", [])}


async def ask(fake_discord: FakeDiscord, world, upload: bytes):
    record = await fake_discord.invoke(
        guild_id=world.guild.id, user_id=world.admin_id, command="admin voice set",
        options={"clip": Attachment("speaker.wav", upload, content_type="audio/wav")}, channel_id=world.text.id,
    )
    return await record.wait_reply(timeout=20)


async def test_the_prompt_asks_for_consent_and_stores_nothing_yet(fake_discord, world, tmp_path: Path) -> None:
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        prompt = await ask(fake_discord, world, speech_wav())
        assert prompt.ephemeral
        assert buttons(prompt) == {CONSENT_ID: CONSENT_LABEL, CANCEL_ID: "Cancel"}
        assert CONSENT_LABEL == "The speaker agreed to have their voice cloned"
        assert not prompt.files and not prompt.attachments, "the prompt never carries the audio"
        assert await bot.database.clips.get(world.guild.id) is None


async def test_cancel_stores_nothing(fake_discord, world, tmp_path: Path) -> None:
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        prompt = await ask(fake_discord, world, speech_wav())
        cancelled = await (await fake_discord.click(
            prompt.message_id, CANCEL_ID, user_id=world.admin_id)).wait_reply(timeout=10)
        assert "not stored" in cancelled.content and not cancelled.components
        assert await bot.database.clips.get(world.guild.id) is None


async def test_only_the_admin_who_asked_can_confirm(fake_discord, world, tmp_path: Path) -> None:
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        prompt = await ask(fake_discord, world, speech_wav())
        denied = await (await fake_discord.click(
            prompt.message_id, CONSENT_ID, user_id=world.member_id)).wait_reply(timeout=10)
        assert denied.ephemeral and "Only the admin" in denied.content
        assert await bot.database.clips.get(world.guild.id) is None
        # The prompt still works for the admin afterwards.
        done = await (await fake_discord.click(
            prompt.message_id, CONSENT_ID, user_id=world.admin_id)).wait_reply(timeout=10)
        assert "Voice set" in done.content and "agreed" in done.content
        assert await bot.database.clips.get(world.guild.id) is not None


async def test_consent_keeps_who_when_and_the_sha256(fake_discord, world, tmp_path: Path) -> None:
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        prompt = await ask(fake_discord, world, speech_wav())
        before = dt.datetime.now(dt.UTC)
        await (await fake_discord.click(
            prompt.message_id, CONSENT_ID, user_id=world.admin_id)).wait_reply(timeout=10)
        stored = await bot.database.clips.get(world.guild.id)
        assert stored is not None
        assert (stored.set_by_id, stored.set_by_name) == (world.admin_id, "alice")
        assert stored.set_at >= before - dt.timedelta(seconds=1), "set_at is the moment of consent"
        assert stored.sha256 == hashlib.sha256(stored.audio).hexdigest()
        assert stored.sha256[:12] in prompt.content, "the admin confirmed exactly this audio"


async def test_the_clip_is_posted_only_by_voice_show_in_its_own_guild(fake_discord, world, tmp_path: Path) -> None:
    upload = speech_wav()
    other = build_world(fake_discord, "Other guild")
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        prompt = await ask(fake_discord, world, upload)
        await (await fake_discord.click(
            prompt.message_id, CONSENT_ID, user_id=world.admin_id)).wait_reply(timeout=10)
        stored = await bot.database.clips.get(world.guild.id)
        assert stored is not None
        elsewhere = await (await fake_discord.invoke(
            guild_id=other.guild.id, user_id=other.admin_id, command="voice show")).wait_reply(timeout=10)
        assert "No voice is set" in elsewhere.content and not elsewhere.files
        shown = await (await fake_discord.invoke(
            guild_id=world.guild.id, user_id=world.admin_id, command="voice show")).wait_reply(timeout=10)
        assert shown.ephemeral and [f.data for f in shown.files] == [stored.audio]

    carrying = [message_id for message_id, files in fake_discord.messages.uploads.items()
                if any(f.data in (stored.audio, upload) for f in files)]
    assert carrying == [shown.message_id]
    assert not any(stored.audio in bytes(str(m), "utf-8") for m in fake_discord.sent_messages)
