"""SQLite writers of one process wait their turn in asyncio, not inside SQLite's busy handler."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.store import Database, Turn
from bot.store.engine import Transactions, _switch_to_wal, create_engine
from bot.store.url import parse_database_url


async def test_a_second_sqlite_writer_waits_without_taking_a_connection(tmp_path: Path) -> None:
    url = parse_database_url(f"sqlite:///{tmp_path / 'w.db'}")
    engine = create_engine(url)
    tx = Transactions(engine)
    try:
        async with tx.write() as connection:
            await connection.execute(text("CREATE TABLE t (x INTEGER)"))
        entered: list[int] = []

        async def write(value: int) -> None:
            async with tx.write() as connection:
                entered.append(value)
                await connection.execute(text("INSERT INTO t VALUES (:x)"), {"x": value})

        async with tx.write() as connection:
            await connection.execute(text("INSERT INTO t VALUES (0)"))
            waiting = [asyncio.ensure_future(write(n)) for n in (1, 2)]
            await asyncio.sleep(0.05)
            # Queued behind the open transaction, holding no pooled connection (and so no
            # SQLite lock attempt that could time out as "database is locked").
            assert entered == []
            assert engine.pool.checkedout() == 1
        await asyncio.gather(*waiting)
        assert entered == [1, 2]  # in arrival order
        async with tx.read() as connection:
            assert (await connection.execute(text("SELECT count(*) FROM t"))).scalar_one() == 3
    finally:
        await engine.dispose()


async def test_many_guilds_writing_at_once_all_land(tmp_path: Path) -> None:
    async with Database.open(f"sqlite:///{tmp_path / 'v.db'}") as db:
        now = dt.datetime.now(dt.UTC)
        turns = [
            Turn(id=None, guild_id=guild, speaker_id=1, speaker_name="a", role="user", text=f"question {n}",
                 created_at=now, interrupted=False)
            for guild in range(1, 21) for n in range(10)
        ]
        await asyncio.gather(*(db.turns.add(turn) for turn in turns))
        for guild in range(1, 21):
            assert len(await db.turns.recent(guild, limit=50, max_chars=10_000)) == 10


class _RacingCursor:
    """A cursor whose first WAL switch loses the race to another opener of the same fresh file."""

    def __init__(self, *, mode_after_race: str, failures: int = 1, error: str = "database is locked") -> None:
        self.mode, self.mode_after_race, self.failures, self.error = "delete", mode_after_race, failures, error
        self.statements: list[str] = []

    def execute(self, statement: str) -> None:
        self.statements.append(statement)
        if statement == "PRAGMA journal_mode = WAL":
            if self.failures:
                self.failures -= 1
                self.mode = self.mode_after_race
                raise sqlite3.OperationalError(self.error)
            self.mode = "wal"

    def fetchone(self) -> tuple[str]:
        return (self.mode,)


def test_a_fresh_file_switched_to_wal_by_a_racing_opener_is_taken_as_is() -> None:
    cursor = _RacingCursor(mode_after_race="wal")
    _switch_to_wal(cursor)
    assert cursor.statements == ["PRAGMA journal_mode = WAL", "PRAGMA journal_mode"]


def test_a_wal_switch_that_lost_the_race_is_tried_again() -> None:
    cursor = _RacingCursor(mode_after_race="delete", failures=2)
    _switch_to_wal(cursor)
    assert cursor.mode == "wal" and cursor.statements.count("PRAGMA journal_mode = WAL") == 3


def test_other_errors_of_the_wal_switch_are_not_retried() -> None:
    cursor = _RacingCursor(mode_after_race="delete", error="disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        _switch_to_wal(cursor)
    assert cursor.statements == ["PRAGMA journal_mode = WAL"]
