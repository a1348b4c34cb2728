"""With other processes writing the same database (shard groups, REDIS_URL), nothing read is kept
in memory: what another process wrote is seen by the next read. One process alone keeps reads."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.limits.budget import MonthlyBudgets
from bot.store import Database, Turn, UsageRecord, VoiceClip

from .support import FakeClock

G1, ADA = 1001, 42
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _turn(text: str, minute: int) -> Turn:
    return Turn(None, G1, ADA, "Ada", "user", text, T0 + timedelta(minutes=minute))


def _clip(audio: bytes) -> VoiceClip:
    return VoiceClip(guild_id=G1, audio=audio, sample_rate=24_000, duration_s=len(audio) / 48_000,
                     sha256=hashlib.sha256(audio).hexdigest(), source_format="ogg", set_by_id=ADA,
                     set_by_name="Ada", set_at=T0)


@pytest.fixture
async def two_processes(database_url: str, clock: FakeClock, request: pytest.FixtureRequest
                        ) -> AsyncIterator[tuple[Database, Database]]:
    sole = bool(getattr(request, "param", False))
    async with (Database.open(database_url, clock=clock, sole_writer=sole) as first,
                Database.open(database_url, clock=clock, sole_writer=sole) as second):
        yield first, second


async def test_settings_written_by_another_process_are_seen(two_processes: tuple[Database, Database]) -> None:
    first, second = two_processes
    assert (await second.guilds.get(G1)).persona is None
    await first.guilds.update(G1, persona="a calm librarian")
    assert (await second.guilds.get(G1)).persona == "a calm librarian"


async def test_history_written_by_another_process_is_seen(two_processes: tuple[Database, Database]) -> None:
    first, second = two_processes
    await second.turns.add(_turn("first question", 0))
    assert [t.text for t in await second.turns.recent(G1, limit=5)] == ["first question"]
    await first.turns.add(_turn("asked through the other process", 1))
    assert [t.text for t in await second.turns.recent(G1, limit=5)] == [
        "first question", "asked through the other process"]
    await first.turns.delete_for_speaker(G1, ADA)
    assert await second.turns.recent(G1, limit=5) == []


async def test_a_clip_set_by_another_process_is_seen(two_processes: tuple[Database, Database]) -> None:
    first, second = two_processes
    assert await second.clips.get(G1) is None
    await first.clips.set(_clip(b"\x01\x02" * 100))
    stored = await second.clips.get(G1)
    assert stored is not None and stored.audio == b"\x01\x02" * 100


async def test_the_months_spend_includes_another_processes_usage(two_processes: tuple[Database, Database]) -> None:
    first, second = two_processes
    budgets = MonthlyBudgets(second, wall_clock=lambda: T0)
    await second.guilds.update(G1, monthly_budget_usd=0.01)
    assert not (await budgets.status(G1)).exhausted
    await first.usage.record(UsageRecord(G1, ADA, "tts_characters", 1_000, 0.016, T0))
    assert (await budgets.status(G1)).exhausted


@pytest.mark.parametrize("two_processes", [True], indirect=True)
async def test_one_process_alone_keeps_what_it_read(two_processes: tuple[Database, Database]) -> None:
    # The other side of the switch: a sole writer serves settings from memory, so a write it did
    # not make is not seen (which is why several processes must not use it).
    first, second = two_processes
    assert first.sole_writer and second.sole_writer
    assert (await second.guilds.get(G1)).persona is None
    await first.guilds.update(G1, persona="a calm librarian")
    assert (await second.guilds.get(G1)).persona is None
