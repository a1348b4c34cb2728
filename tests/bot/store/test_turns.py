from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError

from bot.store import Database, Turn
from bot.store.repositories.turns import TurnRepository

G1, G2 = 111111111111111111, 222222222222222222
ADA, BOB = 900000000000000001, 900000000000000002
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def turn(text: str, *, minute: int, guild: int = G1, speaker: int | None = ADA, role: str = "user") -> Turn:
    name = {ADA: "Ada", BOB: "Bob", None: "Voxcord"}[speaker]
    return Turn(None, guild, speaker, name, role, text, T0 + timedelta(minutes=minute))  # type: ignore[arg-type]


async def test_add_returns_the_turn_with_an_id_and_round_trips(database: Database) -> None:
    stored = await database.turns.add(Turn(None, G1, ADA, "Ada", "user", "héllo 👋", T0, interrupted=True))
    assert stored.id is not None
    assert stored == Turn(stored.id, G1, ADA, "Ada", "user", "héllo 👋", T0, interrupted=True)
    assert await database.turns.recent(G1, limit=5) == [stored]
    assert stored.created_at.tzinfo is not None


async def test_timestamps_are_stored_as_utc_whatever_the_input_offset(database: Database) -> None:
    paris = timezone(timedelta(hours=1))
    local = datetime(2026, 3, 1, 13, 0, tzinfo=paris)
    await database.turns.add(Turn(None, G1, ADA, "Ada", "user", "bonjour", local))
    [back] = await database.turns.recent(G1, limit=1)
    assert back.created_at == T0
    assert back.created_at.utcoffset() == timedelta(0)


async def test_add_refuses_a_turn_that_already_has_an_id(database: Database) -> None:
    with pytest.raises(ValueError, match="already has id"):
        await database.turns.add(Turn(5, G1, ADA, "Ada", "user", "x", T0))


def test_model_refuses_naive_timestamps_and_unknown_roles() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Turn(None, G1, ADA, "Ada", "user", "x", datetime(2026, 3, 1, 12, 0))
    with pytest.raises(ValueError, match="role"):
        Turn(None, G1, ADA, "Ada", "system", "x", T0)  # type: ignore[arg-type]


async def test_add_many_keeps_order_and_assigns_distinct_ids(database: Database) -> None:
    stored = await database.turns.add_many([turn(f"t{i}", minute=i) for i in range(5)])
    assert [t.text for t in stored] == ["t0", "t1", "t2", "t3", "t4"]
    ids = [t.id for t in stored]
    assert None not in ids
    assert len(set(ids)) == 5
    assert await database.turns.recent(G1, limit=10) == stored
    assert await database.turns.add_many([]) == []


async def test_add_many_with_a_bad_row_stores_none_of_them(database: Database) -> None:
    await database.turns.add(turn("before", minute=0))
    # NOT NULL violation on the third row, after two rows were already sent to the database.
    bad = Turn(None, G1, ADA, "Ada", "user", None, T0)  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        await database.turns.add_many([turn("a", minute=1), turn("b", minute=2), bad, turn("c", minute=3)])
    assert [t.text for t in await database.turns.recent(G1, limit=10)] == ["before"]
    assert await database.turns.count(G1) == 1


async def test_recent_is_oldest_first_and_bounded_by_count(database: Database) -> None:
    await database.turns.add_many([turn(f"t{i}", minute=i) for i in range(6)])
    assert [t.text for t in await database.turns.recent(G1, limit=3)] == ["t3", "t4", "t5"]
    assert [t.text for t in await database.turns.recent(G1, limit=100)] == [f"t{i}" for i in range(6)]
    assert await database.turns.recent(G1, limit=0) == []


async def test_recent_orders_by_time_not_insertion(database: Database) -> None:
    # A late-arriving transcript (slow STT) is inserted after a newer turn.
    await database.turns.add(turn("second", minute=2))
    await database.turns.add(turn("first", minute=1))
    assert [t.text for t in await database.turns.recent(G1, limit=5)] == ["first", "second"]


async def test_recent_same_timestamp_falls_back_to_insertion_order(database: Database) -> None:
    await database.turns.add_many([turn("a", minute=0), turn("b", minute=0), turn("c", minute=0)])
    assert [t.text for t in await database.turns.recent(G1, limit=2)] == ["b", "c"]


async def test_recent_bounded_by_chars_keeps_the_newest_unbroken_run(database: Database) -> None:
    await database.turns.add_many(
        [
            turn("x" * 50, minute=0),
            turn("y" * 10, minute=1),
            turn("z" * 20, minute=2),
            turn("w" * 5, minute=3),
        ],
    )
    assert [len(t.text) for t in await database.turns.recent(G1, limit=10, max_chars=35)] == [10, 20, 5]
    assert [len(t.text) for t in await database.turns.recent(G1, limit=10, max_chars=34)] == [20, 5]
    assert [len(t.text) for t in await database.turns.recent(G1, limit=10, max_chars=1000)] == [50, 10, 20, 5]
    # The count bound still applies when chars would allow more.
    assert [len(t.text) for t in await database.turns.recent(G1, limit=2, max_chars=1000)] == [20, 5]
    # A newest turn too long on its own leaves nothing rather than a gap.
    assert await database.turns.recent(G1, limit=10, max_chars=4) == []


async def test_count_and_clear(database: Database) -> None:
    await database.turns.add_many([turn(f"t{i}", minute=i) for i in range(4)])
    await database.turns.add(turn("other guild", minute=0, guild=G2))
    assert await database.turns.count(G1) == 4
    assert await database.turns.clear(G1) == 4
    assert await database.turns.count(G1) == 0
    assert await database.turns.clear(G1) == 0
    assert [t.text for t in await database.turns.recent(G2, limit=5)] == ["other guild"]


async def test_delete_for_speaker_removes_exactly_that_speaker_in_that_guild(database: Database) -> None:
    await database.turns.add_many(
        [
            turn("ada 1", minute=0, speaker=ADA),
            turn("bob 1", minute=1, speaker=BOB),
            turn("reply", minute=2, speaker=None, role="assistant"),
            turn("ada 2", minute=3, speaker=ADA),
            turn("ada elsewhere", minute=4, speaker=ADA, guild=G2),
        ]
    )
    assert await database.turns.delete_for_speaker(G1, ADA) == 2
    assert [t.text for t in await database.turns.recent(G1, limit=10)] == ["bob 1", "reply"]
    assert [t.text for t in await database.turns.recent(G2, limit=10)] == ["ada elsewhere"]
    assert await database.turns.delete_for_speaker(G1, ADA) == 0


async def test_for_speaker_exports_oldest_first_within_one_guild(database: Database) -> None:
    await database.turns.add_many(
        [
            turn("ada late", minute=5, speaker=ADA),
            turn("ada early", minute=1, speaker=ADA),
            turn("bob", minute=2, speaker=BOB),
            turn("ada in G2", minute=3, speaker=ADA, guild=G2),
        ]
    )
    exported = await database.turns.for_speaker(G1, ADA)
    assert [t.text for t in exported] == ["ada early", "ada late"]
    assert all(t.guild_id == G1 and t.speaker_id == ADA and t.id is not None for t in exported)
    assert await database.turns.for_speaker(G1, 42) == []


async def test_purge_older_than_removes_strictly_older_rows(database: Database) -> None:
    await database.turns.add_many([turn(f"g1 m{i}", minute=i) for i in range(4)])
    await database.turns.add_many([turn(f"g2 m{i}", minute=i, guild=G2) for i in range(4)])
    cutoff = T0 + timedelta(minutes=2)
    # One guild only: G2 keeps everything.
    assert await database.turns.purge_older_than(cutoff, guild_id=G1) == 2
    assert [t.text for t in await database.turns.recent(G1, limit=10)] == ["g1 m2", "g1 m3"]
    assert await database.turns.count(G2) == 4
    # All guilds; a turn exactly at the cutoff stays.
    assert await database.turns.purge_older_than(cutoff) == 2
    assert [t.text for t in await database.turns.recent(G2, limit=10)] == ["g2 m2", "g2 m3"]
    assert await database.turns.count(G1) == 2


async def test_purge_compares_instants_across_offsets(database: Database) -> None:
    await database.turns.add(turn("at noon UTC", minute=0))
    new_york = timezone(timedelta(hours=-5))
    # 06:59 in New York is 11:59 UTC: the noon turn is not older than that.
    assert await database.turns.purge_older_than(datetime(2026, 3, 1, 6, 59, tzinfo=new_york)) == 0
    assert await database.turns.purge_older_than(datetime(2026, 3, 1, 7, 1, tzinfo=new_york)) == 1


async def test_purge_refuses_a_naive_cutoff(database: Database) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await database.turns.purge_older_than(datetime(2026, 3, 1))


async def test_guilds_never_see_each_others_turns(database: Database) -> None:
    await database.turns.add_many([turn("secret", minute=0), turn("also secret", minute=1)])
    assert await database.turns.recent(G2, limit=10) == []
    assert await database.turns.count(G2) == 0
    assert await database.turns.for_speaker(G2, ADA) == []
    assert await database.turns.clear(G2) == 0
    assert await database.turns.delete_for_speaker(G2, ADA) == 0
    assert await database.turns.purge_older_than(T0 + timedelta(days=1), guild_id=G2) == 0
    assert await database.turns.count(G1) == 2


async def test_guild_ids_lists_every_guild_with_turns(database: Database) -> None:
    assert await database.turns.guild_ids() == []
    await database.turns.add_many([turn("a", minute=0, guild=G2), turn("b", minute=1), turn("c", minute=2, guild=G2)])
    assert await database.turns.guild_ids() == [G1, G2]


def _count_turn_reads(database: Database) -> list[str]:
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM turns" in statement:
            seen.append(statement)

    event.listen(database._engine.sync_engine, "before_cursor_execute", record)
    return seen


def _uncached(database: Database) -> TurnRepository:
    """A new repository over the same database, nothing read yet: what the rows really are."""
    return TurnRepository(database._transactions, clock=lambda: T0)


async def test_recent_history_is_read_once_and_kept_up_to_date_by_adds(database: Database) -> None:
    # Every reply reads its guild's history; at 50 talking guilds those reads queued for seconds
    # between the transcript and the chat request (bench/scaling.py).
    for minute in range(3):
        await database.turns.add(turn(f"t{minute}", minute=minute))
    reads = _count_turn_reads(database)
    assert [t.text for t in await database.turns.recent(G1, limit=3)] == ["t0", "t1", "t2"]
    await database.turns.add(turn("t4", minute=4))
    await database.turns.add_many([turn("t3", minute=3), turn("other guild", minute=5, guild=G2)])
    assert [t.text for t in await database.turns.recent(G1, limit=3)] == ["t2", "t3", "t4"]
    assert [t.text for t in await database.turns.recent(G1, limit=3, max_chars=4)] == ["t3", "t4"]
    assert len(reads) == 1
    assert await database.turns.recent(G1, limit=3) == await _uncached(database).recent(G1, limit=3)


async def test_deletes_reach_the_kept_history(database: Database) -> None:
    # An erased turn must never reach a prompt from memory.
    stored = [await database.turns.add(turn(f"t{m}", minute=m, speaker=ADA if m % 2 else BOB)) for m in range(6)]

    async def same() -> list[str]:
        kept = await database.turns.recent(G1, limit=3)
        assert kept == await _uncached(database).recent(G1, limit=3)
        return [t.text for t in kept]

    assert await same() == ["t3", "t4", "t5"]
    await database.turns.delete(stored[5].id or 0)  # withdrawn: the next older one moves in
    assert await same() == ["t2", "t3", "t4"]
    await database.turns.delete_for_speaker(G1, ADA)
    assert await same() == ["t0", "t2", "t4"]
    await database.turns.purge_older_than(T0 + timedelta(minutes=1))
    assert await same() == ["t2", "t4"]
    await database.turns.purge_older_than(T0 + timedelta(minutes=3), G1)
    assert await same() == ["t4"]
    await database.turns.clear(G1)
    assert await same() == []

