"""Group commit for the rows every spoken turn writes (the turn itself, its usage records).

A write transaction costs several round trips to the driver's thread (checkout, BEGIN, the
statement, COMMIT, reset), each of which waits for the event loop. With 50 guilds talking at
once the loop is busy and SQLite takes one writer at a time, so ~6 single-row transactions per
turn queued for seconds (bench/scaling.py measured a mean wait of 2 s, 7.8 s at worst, on the
first sentence's wait for the user's row). Here, inserts that arrive while a write is queued or
in flight ride the next transaction together, one multi-row INSERT per table: the cost of a
commit is paid per batch, not per row, and the batch grows with the load.

Each caller still returns only once its own row is committed (crash safety is unchanged), and
one bad row never fails the others: a batch that fails is retried row by row.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sqlalchemy import Column, Table, insert

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

T = TypeVar("T")

log = logging.getLogger(__name__)

# Rows per multi-row INSERT on SQLite: 100 rows of the widest table stay far below SQLite's limit
# of bound parameters per statement (32,766; 999 before 3.32).
_SQLITE_ROWS_PER_INSERT = 100


@dataclass(slots=True)
class PendingInsert:
    """A row waiting for its commit; ``done`` gets its ``returning`` value (or the error)."""

    table: Table
    values: dict[str, Any]
    returning: Column[Any] | None
    done: asyncio.Future[Any]


class WriteTransactions(Protocol):
    """Where the batcher gets its write transaction (``bot.store.engine.Transactions``, which owns
    the batcher: a Protocol here keeps the two modules from importing each other)."""

    dialect_name: str

    async def write_batch(self, work: Callable[[Connection], T]) -> T: ...


class InsertBatcher:
    """Single-row inserts from many tasks, committed together in the next write transaction."""

    __slots__ = ("_flusher", "_pending", "_tx")

    def __init__(self, transactions: WriteTransactions) -> None:
        self._tx = transactions
        self._pending: list[PendingInsert] = []
        self._flusher: asyncio.Task[None] | None = None

    async def insert(self, table: Table, values: dict[str, Any], *, returning: Column[Any] | None = None) -> Any:
        """Insert one row; returns the ``returning`` column's value once the row is committed.

        A caller cancelled while waiting does not take its row back: it is written anyway.
        """
        loop = asyncio.get_running_loop()
        item = PendingInsert(table, values, returning, loop.create_future())
        self._pending.append(item)
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush(), name="store-insert-batch")
        try:
            return await asyncio.shield(item.done)
        except asyncio.CancelledError:
            item.done.add_done_callback(_retrieve)  # nobody awaits it now; a failure is logged below
            raise

    async def drain(self) -> None:
        """Wait until every row queued so far is written (or has failed)."""
        while (flusher := self._flusher) is not None:
            await asyncio.wait({flusher})

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                await self._write(batch)
        finally:
            self._flusher = None
            # Only when the flusher itself is cancelled (the loop is shutting down).
            for item in self._pending:
                item.done.cancel()
            self._pending = []

    async def _write(self, batch: list[PendingInsert]) -> None:
        try:
            results = await self._tx.write_batch(partial(insert_all, batch=batch,
                                                         sqlite=self._tx.dialect_name == "sqlite"))
        except Exception as error:
            if len(batch) == 1:
                settle(batch[0], error=error)
                return
            log.warning("A batch of %d inserts failed (%s); writing them one by one", len(batch), error)
            for item in batch:
                await self._write([item])
            return
        except BaseException:
            for item in batch:
                item.done.cancel()
            raise
        for item, result in zip(batch, results, strict=True):
            settle(item, result=result)


def insert_all(connection: Connection, batch: list[PendingInsert], *, sqlite: bool) -> list[Any]:
    """One multi-row INSERT per (table, returning) group, in arrival order within each group."""
    results: list[Any] = [None] * len(batch)
    groups: dict[tuple[Table, Column[Any] | None], list[int]] = {}
    for index, item in enumerate(batch):
        groups.setdefault((item.table, item.returning), []).append(index)
    for (table, returning), indexes in groups.items():
        rows = [batch[index].values for index in indexes]
        if returning is None:
            connection.execute(insert(table), rows)
            continue
        if sqlite:
            values = _sqlite_returning(connection, table, returning, rows)
        else:
            # sort_by_parameter_order: the ids come back in the order of the rows, so each
            # caller gets its own.
            statement = insert(table).returning(returning, sort_by_parameter_order=True)
            values = list(connection.execute(statement, rows).scalars().all())
        for index, value in zip(indexes, values, strict=True):
            results[index] = value
    return results


def _sqlite_returning(connection: Connection, table: Table, returning: Column[Any],
                            rows: list[dict[str, Any]]) -> list[Any]:
    """The generated ids of ``rows``, in their order, from one INSERT ... VALUES (...), (...) per
    chunk. SQLAlchemy cannot batch ``sort_by_parameter_order`` on SQLite without a sentinel column
    and ran one INSERT per row instead, each four round trips to the driver's thread: a batch of 37
    rows took 0.55 s, 25 rows 1.0 s at 50 talking guilds (bench/scaling.py), and the first sentence
    waits for its question's row. SQLite numbers the rows of one statement in VALUES order (each
    new rowid is the largest so far plus one, and writes are serialised), so the ids sorted
    ascending are the rows' ids in order, whatever order RETURNING lists them in."""
    values: list[Any] = []
    for start in range(0, len(rows), _SQLITE_ROWS_PER_INSERT):
        chunk = rows[start:start + _SQLITE_ROWS_PER_INSERT]
        ids = connection.execute(insert(table).values(chunk).returning(returning)).scalars().all()
        values.extend(sorted(ids))
    return values


def _retrieve(done: asyncio.Future[Any]) -> None:
    if not done.cancelled() and (error := done.exception()) is not None:
        log.error("An insert whose caller had gone failed: %s", error)


def settle(item: PendingInsert, *, result: Any = None, error: BaseException | None = None) -> None:
    if item.done.done():
        return
    if error is not None:
        item.done.set_exception(error)
    else:
        item.done.set_result(result)
