"""SQLite writers of one process wait their turn in asyncio, not inside SQLite's busy handler."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from sqlalchemy import text

from bot.store import Database, Turn
from bot.store.engine import Transactions, create_engine
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
