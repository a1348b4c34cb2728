"""SQLite group commits on a thread of their own: one hand-off to the event loop per batch.

Through the async driver (aiosqlite) every step of a write transaction is a round trip between
its thread and the event loop: pool checkout, cursor, BEGIN IMMEDIATE, each INSERT, COMMIT,
the pool's reset. Each round trip waits for the loop to get round to it, so on the loop of a bot
answering 50 guilds at once (p95 lag ~70 ms, seconds at worst) a batch of rows took 0.5–3.2 s
while SQLite itself spent under 35 ms on it (bench/scaling.py with temporary timers: BEGIN
IMMEDIATE never waited for a lock, the commit's fsync took p95 2 ms). Here the whole transaction
runs in this thread on its own synchronous connection, and the loop is involved twice: to hand
the batch over and to take the result back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, pool
from sqlalchemy.engine import URL, Connection, Engine

T = TypeVar("T")


class SqliteWriterThread:
    """Runs write transactions on a SQLite file in one dedicated thread (started on first use).

    ``hooks`` are the async engine's connect and begin listeners, so this connection is set up
    the same way (WAL, ``synchronous = FULL``, busy timeout, BEGIN IMMEDIATE for writes)."""

    __slots__ = ("_executor", "_writing", "engine")

    def __init__(self, url: URL, *, on_connect: Callable[..., None], on_begin: Callable[[Connection], None],
                 write_options: dict[str, Any]) -> None:
        # pysqlite, the synchronous driver aiosqlite wraps; one connection, used by one thread.
        sync_url = url.set(drivername="sqlite")
        self.engine: Engine = create_engine(sync_url, poolclass=pool.QueuePool, pool_size=1, max_overflow=0)
        event.listen(self.engine, "connect", on_connect)
        event.listen(self.engine, "begin", on_begin)
        self._writing = self.engine.execution_options(**write_options)
        self._executor: ThreadPoolExecutor | None = None

    async def run(self, work: Callable[[Connection], T]) -> T:
        """``work`` in a write transaction, committed on return, rolled back if it raises.

        If the caller is cancelled, the transaction still runs to its end before this returns
        (so the caller's write lock is not released while the thread still writes)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        done = asyncio.get_running_loop().run_in_executor(self._executor, self._transaction, work)
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            await asyncio.wait({done})
            raise

    def _transaction(self, work: Callable[[Connection], T]) -> T:
        with self._writing.begin() as connection:
            return work(connection)

    async def close(self) -> None:
        """Close the connection and end the thread (after any transaction in flight)."""
        executor, self._executor = self._executor, None
        if executor is None:
            self.engine.dispose()
            return
        await asyncio.get_running_loop().run_in_executor(executor, self.engine.dispose)
        executor.shutdown(wait=False)
