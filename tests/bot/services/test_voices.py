"""A guild's clip becomes a registered voice (paid plan) or a compact reference (free plan), once;
the remote voice goes when the clip is replaced or reset."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections.abc import AsyncIterator
from pathlib import Path

import av
import pytest
from mistralai.client import Mistral

from bot.audio.clip import normalise_clip
from bot.audio.wav import pcm16_to_wav
from bot.mistral import RetryPolicy
from bot.mistral.voices import VoiceRegistry
from bot.services.voices import ClipVoices
from bot.store import Database, VoiceClip
from tests.fakes.mistral import FakeMistral
from tests.fakes.synth import speech_like
from tests.fakes.tls import TestCertificates

GUILD = 7
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def clip(seconds: float = 30.0, seed: int = 1) -> VoiceClip:
    checked = normalise_clip(pcm16_to_wav((speech_like(seconds, 24_000, seed=seed) * 20_000).astype("<i2").tobytes(),
                                          sample_rate=24_000))
    return VoiceClip(guild_id=GUILD, audio=checked.wav, sample_rate=24_000, duration_s=checked.duration_s,
                     sha256=hashlib.sha256(checked.wav).hexdigest(), source_format="wav", set_by_id=1,
                     set_by_name="Ann", set_at=NOW)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with Database.open(f"sqlite:///{tmp_path / 'v.db'}") as database:
        yield database


@pytest.fixture
async def fake(trusted_certificates: TestCertificates) -> AsyncIterator[FakeMistral]:
    async with FakeMistral(trusted_certificates) as server:
        yield server


@pytest.fixture
def voices(db: Database, fake: FakeMistral) -> ClipVoices:
    client = Mistral(api_key=fake.api_key, server_url=fake.url)
    return ClipVoices(db.clips, VoiceRegistry(client, retry=RetryPolicy(max_attempts=1)))


async def test_on_a_paid_plan_the_clip_is_registered_once_and_spoken_by_id(
    db: Database, fake: FakeMistral, voices: ClipVoices
) -> None:
    first = clip()
    await db.clips.set(first)
    voices.clip_changed(None, first)
    await voices.settled()
    stored = await db.clips.get(GUILD)
    assert stored is not None and stored.voice_id in fake.voices
    assert stored.reference is not None and fake.voices[stored.voice_id].sample == stored.reference
    assert stored.speech_voice() == (None, stored.voice_id)
    assert await voices.prepare_stored() == 0  # prepared once: nothing left to do at the next start
    assert len(fake.requests_to("voices")) == 1


async def test_the_guilds_set_language_goes_with_the_registered_voice(db: Database, fake: FakeMistral) -> None:
    async def french(guild_id: int) -> str | None:
        return "fr" if guild_id == GUILD else None

    client = Mistral(api_key=fake.api_key, server_url=fake.url)
    voices = ClipVoices(db.clips, VoiceRegistry(client, retry=RetryPolicy(max_attempts=1)), language_of=french)
    first = clip()
    await db.clips.set(first)
    prepared = await voices.prepare(first)
    assert prepared.voice_id is not None and fake.voices[prepared.voice_id].languages == ["fr"]


async def test_on_a_free_plan_the_compact_reference_rides_along_and_is_under_200_kb(
    db: Database, fake: FakeMistral, voices: ClipVoices
) -> None:
    fake.voice_creation_refused = 402
    first = clip()
    await db.clips.set(first)
    voices.clip_changed(None, first)
    await voices.settled()
    stored = await db.clips.get(GUILD)
    assert stored is not None and stored.voice_id is None and stored.reference is not None
    ref_audio, voice_id = stored.speech_voice()
    assert voice_id is None and ref_audio == stored.reference
    assert len(ref_audio) * 4 / 3 < 200_000 < len(first.audio)  # base64 of it, vs the ~1.4 MB WAV
    with av.open(io.BytesIO(ref_audio)) as container:
        assert container.format.name == "mp3"
    # The plan was learnt: the next clip does not ask again.
    second = clip(seed=2)
    await db.clips.set(second)
    voices.clip_changed(stored, second)
    await voices.settled()
    assert len(fake.requests_to("voices")) == 1


async def test_replacing_or_resetting_the_clip_deletes_its_remote_voice(
    db: Database, fake: FakeMistral, voices: ClipVoices
) -> None:
    first = clip()
    await db.clips.set(first)
    voices.clip_changed(None, first)
    await voices.settled()
    old = await db.clips.get(GUILD)
    assert old is not None and old.voice_id in fake.voices

    second = clip(seed=2)
    await db.clips.set(second)
    voices.clip_changed(old, second)
    await voices.settled()
    new = await db.clips.get(GUILD)
    assert new is not None and new.voice_id is not None
    assert list(fake.voices) == [new.voice_id]  # the old voice is gone, the new one registered

    await db.clips.delete(GUILD)
    voices.clip_changed(new, None)
    await voices.settled()
    assert fake.voices == {}


async def test_a_clip_replaced_while_it_was_being_registered_leaves_no_voice_behind(
    db: Database, fake: FakeMistral, voices: ClipVoices
) -> None:
    first = clip()
    await db.clips.set(first)
    await db.clips.set(clip(seed=2))  # replaced before the first one's preparation finished
    assert await voices.prepare(first) == first
    assert fake.voices == {}  # registered, then deleted: it would never be used


async def test_two_processes_preparing_the_same_clip_keep_one_voice(
    db: Database, fake: FakeMistral, voices: ClipVoices
) -> None:
    first = clip()
    await db.clips.set(first)
    winner = await voices.prepare(first)
    assert await voices.prepare(first) == first  # the second preparer loses and cleans up
    stored = await db.clips.get(GUILD)
    assert stored is not None and stored.voice_id == winner.voice_id
    assert list(fake.voices) == [winner.voice_id]


async def test_a_voice_deleted_at_mistral_falls_back_to_the_reference_at_start(
    db: Database, fake: FakeMistral, voices: ClipVoices
) -> None:
    first = clip()
    await db.clips.set(first)
    prepared = await voices.prepare(first)
    assert prepared.voice_id is not None
    assert await voices.check_registered() == 0  # still there
    del fake.voices[prepared.voice_id]  # someone deleted it in the Mistral console
    assert await voices.check_registered() == 1
    stored = await db.clips.get(GUILD)
    assert stored is not None and stored.voice_id is None
    assert stored.speech_voice() == (prepared.reference, None)


async def test_clips_stored_before_migration_6_are_prepared_at_start(
    db: Database, fake: FakeMistral, voices: ClipVoices
) -> None:
    await db.clips.set(clip())
    assert (await db.clips.get(GUILD)).speech_voice()[0] == clip().audio  # type: ignore[union-attr]
    voices.prepare_stored_in_background()
    await voices.settled()
    stored = await db.clips.get(GUILD)
    assert stored is not None and stored.prepared and stored.voice_id in fake.voices
