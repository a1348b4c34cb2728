"""Group commit: single-row inserts queued behind a write share the next transaction."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, Table, Text, event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store import Database, Turn
from bot.store.engine import Transactions, create_engine
from bot.store.url import parse_database_url

_metadata = MetaData()
notes = Table(
    "notes", _metadata,
    Column("id", Integer, primary_key=True),
    Column("text", Text, nullable=False),
)


# A SQLite file's group commits run in the writer thread (bot/store/writer.py); an in-memory
# database's take the async path (bot/store/batching.py), as PostgreSQL's do.
@pytest.fixture(params=["file", "memory"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite:///{tmp_path / 'b.db'}" if request.param == "file" else "sqlite://"
    engine = create_engine(parse_database_url(url))
    async with engine.begin() as connection:
        await connection.run_sync(_metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
async def tx(engine: AsyncEngine) -> AsyncIterator[Transactions]:
    transactions = Transactions(engine)
    yield transactions
    await transactions.close()


def _engines(tx: Transactions, engine: AsyncEngine) -> list[Engine]:
    """Where its transactions run: the async engine's, and the writer thread's (group commits)."""
    return [engine.sync_engine] + ([tx.writer_thread.engine] if tx.writer_thread is not None else [])


def _count_commits(tx: Transactions, engine: AsyncEngine) -> list[int]:
    commits: list[int] = []
    for sync_engine in _engines(tx, engine):
        event.listen(sync_engine, "commit", lambda _connection: commits.append(1))
    return commits


async def _rows(engine: AsyncEngine) -> dict[int, str]:
    async with engine.connect() as connection:
        return dict((await connection.execute(select(notes.c.id, notes.c.text))).all())


async def test_inserts_queued_behind_a_write_share_one_commit_and_each_gets_its_own_id(
    engine: AsyncEngine, tx: Transactions,
) -> None:
    commits = _count_commits(tx, engine)
    async with tx.write() as connection:
        await connection.execute(notes.insert().values(text="held"))
        queued = [asyncio.ensure_future(tx.insert(notes, {"text": f"n{i}"}, returning=notes.c.id)) for i in range(20)]
        await asyncio.sleep(0.05)
        assert not any(task.done() for task in queued), "nothing returns before its row is committed"
    ids = await asyncio.gather(*queued)
    assert len(commits) == 2  # the held write, then all twenty together
    rows = await _rows(engine)
    assert [rows[new_id] for new_id in ids] == [f"n{i}" for i in range(20)]


async def test_a_batch_is_one_insert_statement_and_each_caller_gets_its_own_id(
    engine: AsyncEngine, tx: Transactions,
) -> None:
    # SQLAlchemy ran one INSERT per row for RETURNING in parameter order on SQLite (four round
    # trips to the driver's thread each): 25 rows took a second at 50 talking guilds.
    statements: list[str] = []
    for sync_engine in _engines(tx, engine):
        event.listen(sync_engine, "before_cursor_execute",
                     lambda _c, _cu, statement, *_a: statements.append(statement))
    async with tx.write() as connection:
        await connection.execute(notes.insert().values(text="held"))
        queued = [asyncio.ensure_future(tx.insert(notes, {"text": f"n{i}"}, returning=notes.c.id)) for i in range(250)]
        await asyncio.sleep(0.05)
    ids = await asyncio.gather(*queued)
    rows = await _rows(engine)
    assert [rows[new_id] for new_id in ids] == [f"n{i}" for i in range(250)]
    assert len([s for s in statements if s.startswith("INSERT")]) == 1 + 3  # the held row, then 100 rows a statement


async def test_a_bad_row_fails_only_its_own_caller(engine: AsyncEngine, tx: Transactions) -> None:
    async with tx.write():
        good = [asyncio.ensure_future(tx.insert(notes, {"text": t}, returning=notes.c.id)) for t in ("a", "b")]
        bad = asyncio.ensure_future(tx.insert(notes, {"text": None}, returning=notes.c.id))
        last = asyncio.ensure_future(tx.insert(notes, {"text": "c"}, returning=notes.c.id))
        await asyncio.sleep(0.01)
    with pytest.raises(IntegrityError):
        await bad
    ids = [await task for task in (*good, last)]
    assert sorted((await _rows(engine)).values()) == ["a", "b", "c"]
    assert len(set(ids)) == 3


async def test_a_cancelled_caller_does_not_take_its_row_back(engine: AsyncEngine, tx: Transactions) -> None:
    async with tx.write():
        waiting = asyncio.ensure_future(tx.insert(notes, {"text": "kept"}))
        await asyncio.sleep(0.01)
        waiting.cancel()
    await tx.drain()
    assert list((await _rows(engine)).values()) == ["kept"]


async def test_close_writes_the_turns_still_queued(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'v.db'}"
    now = dt.datetime.now(dt.UTC)
    db = await Database.open(url)
    pending = [
        asyncio.ensure_future(db.turns.add(Turn(id=None, guild_id=7, speaker_id=1, speaker_name="a", role="user",
                                                text=f"q{n}", created_at=now, interrupted=False)))
        for n in range(5)
    ]
    await asyncio.sleep(0)  # queued, not yet written
    await db.close()
    assert all(task.done() for task in pending)
    async with Database.open(url) as reopened:
        assert [t.text for t in await reopened.turns.recent(7, limit=10)] == [f"q{n}" for n in range(5)]


def _count_rows_blocking(path: Path, *, give_up_after: float = 10.0) -> int:
    """The rows committed to ``notes``, read by a connection of its own while this thread (the
    event loop's) is blocked; polls until there is one (giving up after ``give_up_after``)."""
    deadline = time.monotonic() + give_up_after
    with sqlite3.connect(path) as connection:
        while True:
            (count,) = connection.execute("SELECT count(*) FROM notes").fetchone()
            if count or time.monotonic() > deadline:
                return int(count)
            time.sleep(0.01)  # noqa: ASYNC251 - blocking the loop on purpose: the test's point


async def test_a_group_commit_needs_no_event_loop_turn_once_handed_over(tmp_path: Path) -> None:
    # Through the async driver each step of the transaction (checkout, BEGIN IMMEDIATE, INSERT,
    # COMMIT, reset) waited for the event loop: at 50 talking guilds a batch took 0.5-3.2 s of
    # which SQLite spent < 35 ms, and every reply waits for its question's row. Handed to the
    # writer thread, the whole transaction commits while the loop is busy (blocked here).
    engine = create_engine(parse_database_url(f"sqlite:///{tmp_path / 'b.db'}"))
    tx = Transactions(engine)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_metadata.create_all)
        inserted = asyncio.ensure_future(tx.insert(notes, {"text": "question"}, returning=notes.c.id))
        for _ in range(5):
            await asyncio.sleep(0)  # the row is queued and handed over
        assert _count_rows_blocking(tmp_path / "b.db") == 1
        assert await inserted == 1
    finally:
        await tx.close()
        await engine.dispose()
