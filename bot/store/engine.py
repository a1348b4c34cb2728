"""Engine construction and the two kinds of transaction the repositories use."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Final, TypeVar

from sqlalchemy import Column, Table, event, pool
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bot.store.batching import InsertBatcher
from bot.store.url import is_sqlite, sqlite_path
from bot.store.writer import SqliteWriterThread

T = TypeVar("T")

# Execution option that marks a connection as about to write; read by the SQLite BEGIN hook.
_WRITE_OPTION: Final = "voxcord_write"
# How long a SQLite writer waits for another writer (a second bot process, a migration, an
# admin's sqlite3 shell) before failing with "database is locked".
SQLITE_BUSY_TIMEOUT_MS: Final = 10_000


def create_engine(url: URL, *, echo: bool = False) -> AsyncEngine:
    if not is_sqlite(url):
        # A bot idles for hours; servers and proxies drop idle connections in the meantime.
        return create_async_engine(url, echo=echo, pool_pre_ping=True)
    options: dict[str, Any] = {}
    if sqlite_path(url) is None:
        # Each connection to :memory: is its own empty database, and the default StaticPool
        # lets concurrent tasks interleave transactions on one connection. One pooled
        # connection, handed to one task at a time, keeps a single consistent database.
        options = {"poolclass": pool.AsyncAdaptedQueuePool, "pool_size": 1, "max_overflow": 0}
    engine = create_async_engine(url, echo=echo, **options)
    event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # sqlite3's legacy transaction handling opens a transaction only before DML, never before
    # SELECT or DDL: a migration's CREATE TABLE would commit on its own and a failed
    # multi-row insert could leave rows behind. SQLAlchemy's documented fix: switch that off
    # here and let _sqlite_on_begin issue every BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout first: switching to WAL needs a lock another opener may hold.
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        # WAL: readers do not block the writer, and a kill -9 mid-write leaves the database
        # intact (the uncommitted tail of the log is discarded on next open).
        _switch_to_wal(cursor)
        # FULL fsyncs the log on every commit: a committed turn survives power loss, not only
        # a process crash. Voxcord writes a few rows per spoken turn, so the cost is small.
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    # Switching a fresh file to WAL needs an exclusive lock, and SQLite answers "database is
    # locked" at once, without its busy handler, when another connection opening the same fresh
    # file holds a shared lock meanwhile (6 concurrent opens under a loaded test suite hit it).
    # The mode is stored in the file, so once any opener has switched, the rest find it set.
    # Only a race on a brand-new file ever waits here, at most ~1 s in all.
    for attempt in range(50):
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except Exception as error:  # sqlite3's, or the async adapter's re-raise of it
            if "database is locked" not in str(error) or attempt == 49:
                raise
            cursor.execute("PRAGMA journal_mode")
            if str(cursor.fetchone()[0]).lower() == "wal":
                return
            time.sleep(0.02)  # noqa: ASYNC251 - runs in the driver's connect hook; only in this rare race


def _sqlite_on_begin(connection: Connection) -> None:
    # A deferred BEGIN that later writes must upgrade its read lock, and in WAL mode that
    # fails at once with SQLITE_BUSY (busy_timeout does not apply) if another connection
    # committed meanwhile. Writers take the write lock up front and queue instead.
    if connection.get_execution_options().get(_WRITE_OPTION):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")


class Transactions:
    """Opens read and write transactions on one engine; the only way repositories get a connection."""

    __slots__ = ("_inserts", "_reader", "_write_turn", "_writer", "dialect_name", "writer_thread")

    def __init__(self, engine: AsyncEngine) -> None:
        self._reader = engine
        self._writer = engine.execution_options(**{_WRITE_OPTION: True})
        self.dialect_name: str = engine.dialect.name
        # SQLite has one writer at a time. Writers of this process queue here, in order, instead
        # of each holding a pooled connection inside SQLite's busy handler, whose sleeps grow to
        # 100 ms: with 20 talking guilds that turned into seconds and "database is locked"
        # (bench/scaling.py). busy_timeout still covers writers in other processes, and the
        # group-commit thread below, which does not wait for the event loop to take its turn.
        self._write_turn: asyncio.Lock | None = asyncio.Lock() if self.dialect_name == "sqlite" else None
        # Group commits on a SQLite file are driven by a thread of their own (bot/store/writer.py);
        # an in-memory database is private to its connection, so there they take the async path.
        self.writer_thread: SqliteWriterThread | None = None
        self._inserts: InsertBatcher | SqliteWriterThread
        if self.dialect_name == "sqlite" and sqlite_path(engine.url) is not None:
            self._inserts = self.writer_thread = SqliteWriterThread(
                engine.url, on_connect=_sqlite_on_connect, on_begin=_sqlite_on_begin,
                write_options={_WRITE_OPTION: True})
        else:
            self._inserts = InsertBatcher(self)

    def read(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A transaction for queries: one consistent snapshot for all statements in it."""
        return self._reader.begin()

    def write(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A transaction that writes: committed on normal exit, rolled back on any exception."""
        if self._write_turn is None:
            return self._writer.begin()
        return self._one_writer_at_a_time()

    @asynccontextmanager
    async def _one_writer_at_a_time(self) -> AsyncIterator[AsyncConnection]:
        assert self._write_turn is not None
        async with self._write_turn, self._writer.begin() as connection:
            yield connection

    async def write_batch(self, work: Callable[[Connection], T]) -> T:
        """``work`` (synchronous) in a write transaction, in its turn among this process's writers."""
        async with self.write() as connection:
            return await connection.run_sync(work)

    async def insert(self, table: Table, values: dict[str, Any], *, returning: Column[Any] | None = None) -> Any:
        """Insert one row, committed together with the other rows queued meanwhile (group commit).

        Returns once the row is committed, with the ``returning`` column's value if given."""
        return await self._inserts.insert(table, values, returning=returning)

    async def drain(self) -> None:
        """Wait for every queued insert to be committed."""
        await self._inserts.drain()

    async def close(self) -> None:
        """Write the inserts still queued, then end the writer thread."""
        await self._inserts.drain()
        if self.writer_thread is not None:
            await self.writer_thread.close()

    def upsert(self, table: Table) -> sqlite.Insert | postgresql.Insert:
        """INSERT ... ON CONFLICT for this dialect; both spell on_conflict_do_update the same."""
        if self.dialect_name == "sqlite":
            return sqlite.insert(table)
        return postgresql.insert(table)
