"""Group commit on a SQLite file, driven by a thread of its own.

Through the async driver (aiosqlite) every step of a write transaction is a round trip between
its thread and the event loop: pool checkout, cursor, BEGIN IMMEDIATE, each INSERT, COMMIT,
the pool's reset. Each round trip waits for the loop to get round to it, so on the loop of a bot
answering 50 guilds at once (p95 lag ~70 ms, seconds at worst) a batch of rows took 0.5–3.2 s
while SQLite itself spent under 35 ms on it (bench/scaling.py with temporary timers: BEGIN
IMMEDIATE never waited for a lock, the commit's fsync took p95 2 ms). Here the thread takes the
rows queued so far, writes them in one transaction on its own synchronous connection, hands the
results back to the loop in one callback and goes straight on with the rows queued meanwhile:
the loop is involved only to queue a row and to wake its caller.

The thread takes SQLite's write lock (BEGIN IMMEDIATE) before it gathers the batch, so rows that
arrive while another writer holds the lock ride the same commit. It does not queue behind the
process's async writers (``Transactions.write``, rare: settings, clips, captions): SQLite's busy
timeout arbitrates between the two, and whichever waits does so in a driver thread.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Column, Table, create_engine, event, pool
from sqlalchemy.engine import URL, Connection, Engine

from bot.store.batching import PendingInsert, insert_all, settle

log = logging.getLogger(__name__)

_STOP = object()


class SqliteWriterThread:
    """Single-row inserts from many tasks, committed together by one thread (started on first use).

    ``on_connect`` / ``on_begin`` are the async engine's listeners, so this connection is set up
    the same way (WAL, ``synchronous = FULL``, busy timeout, BEGIN IMMEDIATE for writes)."""

    def __init__(self, url: URL, *, on_connect: Callable[..., None], on_begin: Callable[[Connection], None],
                 write_options: dict[str, Any]) -> None:
        # pysqlite, the synchronous driver aiosqlite wraps; one connection, used by this thread only.
        self.engine: Engine = create_engine(url.set(drivername="sqlite"), poolclass=pool.QueuePool,
                                            pool_size=1, max_overflow=0)
        event.listen(self.engine, "connect", on_connect)
        event.listen(self.engine, "begin", on_begin)
        self._writing = self.engine.execution_options(**write_options)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsettled = 0
        self._idle = asyncio.Event()

    async def insert(self, table: Table, values: dict[str, Any], *, returning: Column[Any] | None = None) -> Any:
        """Insert one row; returns the ``returning`` column's value once the row is committed.

        A caller cancelled while waiting does not take its row back: it is written anyway."""
        loop = asyncio.get_running_loop()
        if self._thread is None:
            self._loop = loop
            self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
            self._thread.start()
        item = PendingInsert(table, values, returning, loop.create_future())
        self._unsettled += 1
        self._idle.clear()
        self._queue.put(item)
        # Awaited directly, not shielded: each layer of futures costs the caller a turn of a busy
        # loop. Cancelling the caller cancels only this future; the thread writes the row anyway.
        return await item.done

    async def drain(self) -> None:
        """Wait until every row queued so far is written (or has failed)."""
        while self._unsettled:
            await self._idle.wait()

    async def close(self) -> None:
        """Write the rows still queued, then close the connection and end the thread."""
        await self.drain()
        thread, self._thread = self._thread, None
        if thread is None:
            self.engine.dispose()
            return
        self._queue.put(_STOP)
        await asyncio.to_thread(thread.join)

    # the writer thread ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while (first := self._queue.get()) is not _STOP:
                if not self._write_batch(first):
                    break
        finally:
            self.engine.dispose()

    def _write_batch(self, first: PendingInsert) -> bool:
        """Write ``first`` and every row queued by the time the write lock is held; False once
        the stop sign was among them."""
        batch, going_on = [first], True
        outcome: list[Any] | BaseException
        try:
            with self._writing.begin() as connection:  # BEGIN IMMEDIATE: waits for another writer
                while True:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is _STOP:
                        going_on = False
                        break
                    batch.append(more)
                outcome = insert_all(connection, batch, sqlite=True)
        except Exception as error:
            outcome = error
        if isinstance(outcome, BaseException) and len(batch) > 1:
            log.warning("A batch of %d inserts failed (%s); writing them one by one", len(batch), outcome)
            for item in batch:
                self._write_one(item)
            return going_on
        self._hand_back(batch, outcome)
        return going_on

    def _write_one(self, item: PendingInsert) -> None:
        outcome: list[Any] | BaseException
        try:
            with self._writing.begin() as connection:
                outcome = insert_all(connection, [item], sqlite=True)
        except Exception as error:
            outcome = error
        self._hand_back([item], outcome)

    def _hand_back(self, batch: list[PendingInsert], outcome: list[Any] | BaseException) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._settle, batch, outcome)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            log.warning("%d inserts committed after the event loop closed", len(batch))

    def _settle(self, batch: list[PendingInsert], outcome: list[Any] | BaseException) -> None:
        # On the loop: wake every caller of the batch in this one callback.
        for index, item in enumerate(batch):
            if isinstance(outcome, BaseException):
                if item.done.cancelled():
                    log.error("An insert whose caller had gone failed: %s", outcome)
                settle(item, error=outcome)
            else:
                settle(item, result=outcome[index])
        self._unsettled -= len(batch)
        if not self._unsettled:
            self._idle.set()
