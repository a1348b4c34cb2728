from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError

from bot.store import Database, UsageRecord, VoiceClip

from .support import FakeClock

G1, G2 = 111111111111111111, 222222222222222222
ADA, BOB = 900000000000000001, 900000000000000002
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def clip(audio: bytes, *, guild: int = G1, by: str = "Ada") -> VoiceClip:
    return VoiceClip(
        guild_id=guild,
        audio=audio,
        sample_rate=24_000,
        duration_s=len(audio) / 48_000,
        sha256=hashlib.sha256(audio).hexdigest(),
        source_format="ogg",
        set_by_id=ADA,
        set_by_name=by,
        set_at=T0,
    )


# --- voice clips ---------------------------------------------------------------------------


async def test_clip_round_trips_binary_audio_exactly(database: Database) -> None:
    audio = bytes(range(256)) * 400  # every byte value, including NUL; ~100 KB
    assert await database.clips.get(G1) is None
    await database.clips.set(clip(audio))
    stored = await database.clips.get(G1)
    assert stored == clip(audio)
    assert stored is not None
    assert type(stored.audio) is bytes


async def test_clip_set_replaces_the_previous_one(database: Database) -> None:
    await database.clips.set(clip(b"old" * 100, by="Ada"))
    await database.clips.set(clip(b"new" * 50, by="Bob"))
    stored = await database.clips.get(G1)
    assert stored == clip(b"new" * 50, by="Bob")


async def test_clip_delete(database: Database) -> None:
    await database.clips.set(clip(b"abc"))
    assert await database.clips.delete(G1) is True
    assert await database.clips.get(G1) is None
    assert await database.clips.delete(G1) is False


async def test_a_clip_keeps_its_voice_id_and_reference_and_a_replacement_clears_them(database: Database) -> None:
    await database.clips.set(clip(b"old" * 100))
    old = clip(b"old" * 100)
    assert await database.clips.set_voice(G1, old.sha256, voice_id="voice-abc", reference=b"\xff\xfb" * 50) is True
    stored = await database.clips.get(G1)
    assert stored is not None and stored.prepared
    assert (stored.voice_id, stored.reference, type(stored.reference)) == ("voice-abc", b"\xff\xfb" * 50, bytes)
    # Prepared once: a second result (another process) does not overwrite the voice in use.
    assert await database.clips.set_voice(G1, old.sha256, voice_id="voice-xyz", reference=None) is False
    await database.clips.set(clip(b"new" * 50))
    replaced = await database.clips.get(G1)
    assert replaced is not None and (replaced.voice_id, replaced.reference) == (None, None)


async def test_a_late_voice_result_never_lands_on_a_replacement_clip(database: Database) -> None:
    await database.clips.set(clip(b"new" * 50))
    stale = clip(b"old" * 100).sha256
    assert await database.clips.set_voice(G1, stale, voice_id="voice-old", reference=None) is False
    assert await database.clips.set_voice(G2, stale, voice_id="voice-old", reference=None) is False
    stored = await database.clips.get(G1)
    assert stored is not None and stored.voice_id is None


async def test_clip_repr_does_not_dump_audio() -> None:
    assert "<300000 bytes>" in repr(clip(b"\x00" * 300_000))
    assert len(repr(clip(b"\x00" * 300_000))) < 400


async def test_clips_are_per_guild(database: Database) -> None:
    await database.clips.set(clip(b"one"))
    assert await database.clips.get(G2) is None
    assert await database.clips.delete(G2) is False
    await database.clips.set(clip(b"two", guild=G2))
    assert (await database.clips.get(G1)) == clip(b"one")


# --- usage ----------------------------------------------------------------------------------


def usage(kind: str, quantity: float, cost: float, *, minute: int = 0, guild: int = G1) -> UsageRecord:
    return UsageRecord(guild, ADA, kind, quantity, cost, T0 + timedelta(minutes=minute))  # type: ignore[arg-type]


async def test_usage_summary_and_total_since(database: Database) -> None:
    await database.usage.record(usage("stt_seconds", 12.5, 0.002, minute=-10))  # before the window
    await database.usage.record_many(
        [
            usage("stt_seconds", 4.0, 0.001),
            usage("stt_seconds", 6.0, 0.0015, minute=1),
            usage("chat_input_tokens", 900, 0.0018, minute=1),
            usage("chat_output_tokens", 120, 0.0007, minute=1),
            usage("tts_characters", 240, 0.004, minute=2),
        ]
    )
    summary = await database.usage.summary(G1, since=T0)
    assert set(summary) == {"stt_seconds", "chat_input_tokens", "chat_output_tokens", "tts_characters"}
    assert summary["stt_seconds"] == pytest.approx((10.0, 0.0025))
    assert summary["chat_input_tokens"] == pytest.approx((900.0, 0.0018))
    assert summary["tts_characters"] == pytest.approx((240.0, 0.004))
    assert await database.usage.total_cost(G1, since=T0) == pytest.approx(0.0025 + 0.0018 + 0.0007 + 0.004)
    assert await database.usage.total_cost(G1, since=T0 - timedelta(hours=1)) == pytest.approx(0.011)
    # `since` is inclusive: a record exactly at since counts.
    assert await database.usage.total_cost(G1, since=T0 + timedelta(minutes=2)) == pytest.approx(0.004)


async def test_usage_empty_window(database: Database) -> None:
    assert await database.usage.summary(G1, since=T0) == {}
    assert await database.usage.total_cost(G1, since=T0) == 0.0
    await database.usage.record_many([])
    assert await database.usage.summary(G1, since=T0) == {}


async def test_usage_record_many_is_all_or_nothing(database: Database) -> None:
    bad = UsageRecord(G1, ADA, "stt_seconds", None, 0.1, T0)  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        await database.usage.record_many([usage("stt_seconds", 1, 0.5), usage("tts_characters", 9, 0.5), bad])
    assert await database.usage.total_cost(G1, since=T0 - timedelta(days=1)) == 0.0


def test_usage_model_refuses_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="kind"):
        usage("gpu_hours", 1, 1)


async def test_usage_is_per_guild(database: Database) -> None:
    await database.usage.record(usage("tts_characters", 100, 1.25, guild=G1))
    assert await database.usage.summary(G2, since=T0) == {}
    assert await database.usage.total_cost(G2, since=T0) == 0.0
    await database.usage.record(usage("tts_characters", 10, 0.25, guild=G2))
    assert await database.usage.total_cost(G1, since=T0) == pytest.approx(1.25)


# --- privacy --------------------------------------------------------------------------------


async def test_privacy_status_set_and_change(database: Database, clock: FakeClock) -> None:
    assert await database.privacy.status(G1, ADA) is None
    await database.privacy.set_opt(G1, ADA, opted_in=False)
    assert await database.privacy.status(G1, ADA) is False
    clock.advance(timedelta(days=1))
    await database.privacy.set_opt(G1, ADA, opted_in=True, at=clock.now)
    assert await database.privacy.status(G1, ADA) is True
    assert await database.privacy.choices(G1) == {ADA: True}


async def test_privacy_forget_returns_member_to_the_guild_default(database: Database) -> None:
    await database.privacy.set_opt(G1, ADA, opted_in=False)
    await database.privacy.set_opt(G1, BOB, opted_in=True)
    assert await database.privacy.forget(G1, ADA) is True
    assert await database.privacy.status(G1, ADA) is None
    assert await database.privacy.status(G1, BOB) is True
    assert await database.privacy.forget(G1, ADA) is False


async def test_privacy_is_per_guild(database: Database) -> None:
    await database.privacy.set_opt(G1, ADA, opted_in=False)
    assert await database.privacy.status(G2, ADA) is None
    assert await database.privacy.choices(G2) == {}
    assert await database.privacy.forget(G2, ADA) is False
    await database.privacy.set_opt(G2, ADA, opted_in=True)
    assert await database.privacy.status(G1, ADA) is False
    assert await database.privacy.choices(G1) == {ADA: False}


async def test_privacy_refuses_naive_time(database: Database) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await database.privacy.set_opt(G1, ADA, opted_in=True, at=datetime(2026, 1, 1))
    assert await database.privacy.status(G1, ADA) is None


async def test_a_guild_without_a_clip_is_not_asked_again_until_one_is_set(database: Database) -> None:
    # Every reply asks for its guild's clip; at 50 talking guilds those reads queued for the
    # pool's connections in front of the chat request (bench/scaling.py).
    reads: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "voice_clips" in statement:
            reads.append(statement)

    event.listen(database._engine.sync_engine, "before_cursor_execute", record)
    assert await database.clips.get(G1) is None
    assert await database.clips.get(G1) is None
    assert len(reads) == 1
    await database.clips.set(clip(b"abc" * 100))
    assert (await database.clips.get(G1) or clip(b"")).audio == b"abc" * 100
    await database.clips.delete(G1)
    assert await database.clips.get(G1) is None
