"""The reply context read ahead at the end of speech is used only while nothing was stored since."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bot.conversation.context import ConversationStore
from bot.store import Database, Turn, VoiceClip

GUILD = 5
NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def turn(text: str, role: str = "user") -> Turn:
    return Turn(id=None, guild_id=GUILD, speaker_id=1, speaker_name="Ann", role=role, text=text, created_at=NOW,
                interrupted=False)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with Database.open(f"sqlite:///{tmp_path / 'c.db'}") as database:
        yield database


def store(db: Database) -> ConversationStore:
    return ConversationStore(db, GUILD, history_turns=20, history_chars=6000)


async def test_a_read_ahead_carries_history_and_clip(db: Database) -> None:
    audio = b"RIFF" + bytes(100)
    await db.clips.set(VoiceClip(guild_id=GUILD, audio=audio, sample_rate=24000, duration_s=1.0,
                                 sha256=hashlib.sha256(audio).hexdigest(), source_format="wav", set_by_id=1,
                                 set_by_name="Ann", set_at=NOW))
    conversation = store(db)
    await conversation.add_turn(turn("What is the capital of France?"))
    ahead = conversation.read_ahead()
    context = await conversation.context(ahead)
    assert [t.text for t in context.history] == ["What is the capital of France?"]
    assert context.clip is not None and context.clip.audio == audio


async def test_a_turn_stored_after_the_read_ahead_began_forces_a_fresh_read(db: Database) -> None:
    conversation = store(db)
    await conversation.add_turn(turn("First question?"))
    ahead = conversation.read_ahead()
    await ahead.read  # it finished before the previous answer was stored
    await conversation.add_turn(turn("The first answer.", role="assistant"))
    context = await conversation.context(ahead)
    assert [t.text for t in context.history] == ["First question?", "The first answer."]


async def test_a_stale_read_ahead_is_refreshed_at_once_from_memory_and_keeps_its_clip(db: Database) -> None:
    # The history is in the turn repository's memory after the read-ahead: refreshing it must
    # not cost the chat request a loop round trip (the room benchmark measured 2-8 ms).
    audio = b"RIFF" + bytes(100)
    await db.clips.set(VoiceClip(guild_id=GUILD, audio=audio, sample_rate=24000, duration_s=1.0,
                                 sha256=hashlib.sha256(audio).hexdigest(), source_format="wav", set_by_id=1,
                                 set_by_name="Ann", set_at=NOW))
    conversation = store(db)
    await conversation.add_turn(turn("First question?"))
    ahead = conversation.read_ahead()
    await ahead.read
    await conversation.add_turn(turn("The first answer.", role="assistant"))
    pending = conversation.context(ahead)
    with pytest.raises(StopIteration) as finished:
        pending.send(None)  # finishes on its first step: it never waited for the loop
    context = finished.value.value
    assert [t.text for t in context.history] == ["First question?", "The first answer."]
    assert context.clip is not None and context.clip.audio == audio


async def test_a_warmed_conversation_reads_its_context_without_a_loop_round_trip(db: Database) -> None:
    await db.turns.add(turn("Already there"))
    conversation = store(db)
    await conversation.warm()
    pending = conversation.context(None)
    with pytest.raises(StopIteration) as finished:
        pending.send(None)  # history and the absent clip come from the repositories' memory
    assert [t.text for t in finished.value.value.history] == ["Already there"]
    assert finished.value.value.clip is None


async def test_after_a_removed_question_the_next_reply_reads_its_history_from_memory(db: Database) -> None:
    conversation = store(db)
    await conversation.warm()
    kept = await conversation.add_turn(turn("Earlier question?"))
    withdrawn = await conversation.add_turn(turn("What is the capital of France?"))
    assert withdrawn.id is not None and kept.id is not None
    await conversation.remove_turn(withdrawn.id)  # its member went on talking
    pending = conversation.context(None)
    with pytest.raises(StopIteration) as finished:
        pending.send(None)  # no database read: the removal read the history back
    assert [t.text for t in finished.value.value.history] == ["Earlier question?"]


async def test_with_other_writers_history_and_clip_are_read_at_once() -> None:
    # Nothing is kept in memory then: both are database reads, and one after the other would
    # add a round trip to a reply whose read-ahead started late.
    clip_asked = asyncio.Event()

    async def recent(guild_id: int, **kwargs: Any) -> list[Turn]:
        async with asyncio.timeout(2):
            await clip_asked.wait()  # a sequential read never gets here
        return []

    async def get(guild_id: int) -> VoiceClip | None:
        clip_asked.set()
        return None

    shared = SimpleNamespace(sole_writer=False, turns=SimpleNamespace(recent=recent), clips=SimpleNamespace(get=get))
    context = await store(shared).context(None)  # type: ignore[arg-type]
    assert context.history == [] and context.clip is None


async def test_writes_by_others_do_not_count_but_our_own_do(db: Database) -> None:
    conversation = store(db)
    ahead = conversation.read_ahead()
    await ahead.read
    await db.turns.add(turn("Written elsewhere"))  # e.g. another process: not this conversation's write
    context = await conversation.context(ahead)
    assert context.history == []  # the read-ahead was used as it was


async def test_no_read_ahead_reads_now(db: Database) -> None:
    conversation = store(db)
    await db.turns.add(turn("Already there"))
    assert [t.text for t in (await conversation.context(None)).history] == ["Already there"]
