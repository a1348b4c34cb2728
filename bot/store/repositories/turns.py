"""Conversation history: what was said in a guild, by whom, in order."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import RowMapping

from bot.store.models import Turn, require_aware
from bot.store.repositories._base import Repository
from bot.store.schema import turns

if TYPE_CHECKING:
    from bot.store.engine import Transactions

_COLUMNS: Final = tuple(turns.c)
# Newest first; id breaks ties between turns stamped in the same microsecond.
_NEWEST_FIRST: Final = (turns.c.created_at.desc(), turns.c.id.desc())
_OLDEST_FIRST: Final = (turns.c.created_at.asc(), turns.c.id.asc())


def _values(turn: Turn) -> dict[str, Any]:
    if turn.id is not None:
        raise ValueError(f"turn already has id {turn.id}; only new turns can be added")
    values = dataclasses.asdict(turn)
    del values["id"]
    return values


def _to_turn(row: RowMapping) -> Turn:
    return Turn(**row)


def _newest_first(turn: Turn) -> tuple[datetime, int]:
    return turn.created_at, turn.id or 0


@dataclass(slots=True)
class _Window:
    """A guild's newest ``limit`` turns, newest first, as the database holds them."""

    limit: int
    newest_first: list[Turn]

    def remember(self, turn: Turn) -> None:
        self.newest_first.append(turn)
        self.newest_first.sort(key=_newest_first, reverse=True)
        del self.newest_first[self.limit:]


class TurnRepository(Repository):
    """``recent`` (every reply's history) is served from memory after a guild's first read and
    kept up to date by this repository's own writes: at 50 talking guilds the history reads
    queued 0.5-4 s for the pool's connections between the transcript and the chat request
    (bench/scaling.py, docs/decisions.md). Every delete drops what it may have touched, so an
    erased turn never reaches a prompt. The process serving a guild is the one writing its turns."""

    __slots__ = ("_changes", "_epoch", "_keep", "_windows")

    def __init__(self, transactions: Transactions, *, clock: Callable[[], datetime], remember: bool = True) -> None:
        super().__init__(transactions, clock=clock)
        self._keep = remember  # False: another process may write them, so every read is fresh
        self._windows: dict[int, _Window] = {}
        # Writes per guild, and deletes that may touch any guild: a read that overlapped one is
        # not kept.
        self._changes: dict[int, int] = {}
        self._epoch = 0

    def _version(self, guild_id: int) -> tuple[int, int]:
        return self._epoch, self._changes.get(guild_id, 0)

    def _changed(self, guild_id: int | None, *, drop: bool) -> None:
        if guild_id is None:
            self._epoch += 1
            if drop:
                self._windows.clear()
            return
        self._changes[guild_id] = self._changes.get(guild_id, 0) + 1
        if drop:
            self._windows.pop(guild_id, None)

    def _remember(self, stored: Sequence[Turn]) -> None:
        for turn in stored:
            window = self._windows.get(turn.guild_id)
            if window is not None:
                window.remember(turn)

    async def add(self, turn: Turn) -> Turn:
        """Store a new turn (id None) and return it with its id."""
        try:
            new_id = await self._tx.insert(turns, _values(turn), returning=turns.c.id)
        except BaseException:
            self._changed(turn.guild_id, drop=True)  # committed or not: read it again
            raise
        stored = dataclasses.replace(turn, id=new_id)
        self._changed(turn.guild_id, drop=False)
        self._remember([stored])
        return stored

    async def add_many(self, new_turns: Sequence[Turn]) -> list[Turn]:
        """Store all turns or none of them; returns them with ids, in the order given."""
        if not new_turns:
            return []
        rows = [_values(turn) for turn in new_turns]
        # sort_by_parameter_order: SQLAlchemy batches multi-row INSERT ... RETURNING, and
        # without it the ids could come back in a different order than the turns.
        statement = insert(turns).returning(turns.c.id, sort_by_parameter_order=True)
        guilds = {turn.guild_id for turn in new_turns}
        try:
            async with self._tx.write() as connection:
                ids = (await connection.execute(statement, rows)).scalars().all()
        except BaseException:
            for guild_id in guilds:
                self._changed(guild_id, drop=True)
            raise
        stored = [dataclasses.replace(turn, id=new_id) for turn, new_id in zip(new_turns, ids, strict=True)]
        for guild_id in guilds:
            self._changed(guild_id, drop=False)
        self._remember(stored)
        return stored

    async def recent(self, guild_id: int, *, limit: int, max_chars: int | None = None) -> list[Turn]:
        """The newest turns of a guild, oldest first: at most ``limit`` turns and, if given, at
        most ``max_chars`` characters of text in total.

        The result is always an unbroken run ending at the newest turn: a long turn that does
        not fit ends the run rather than being skipped, so the model never sees a gap.
        """
        if limit <= 0:
            return []
        window = self._windows.get(guild_id)
        if window is None or window.limit != limit:
            version = self._version(guild_id)
            statement = select(*_COLUMNS).where(turns.c.guild_id == guild_id).order_by(*_NEWEST_FIRST).limit(limit)
            async with self._tx.read() as connection:
                rows = (await connection.execute(statement)).mappings().all()
            window = _Window(limit, [_to_turn(row) for row in rows])
            if self._keep and self._version(guild_id) == version:
                self._windows[guild_id] = window
        chosen: list[Turn] = []
        used = 0
        for turn in window.newest_first:
            if max_chars is not None:
                used += len(turn.text)
                if used > max_chars:
                    break
            chosen.append(turn)
        chosen.reverse()
        return chosen

    async def count(self, guild_id: int) -> int:
        statement = select(func.count()).select_from(turns).where(turns.c.guild_id == guild_id)
        async with self._tx.read() as connection:
            return (await connection.execute(statement)).scalar_one()

    async def guild_ids(self) -> list[int]:
        """Every guild with stored turns, including guilds the bot has since left (retention
        applies to their text too)."""
        statement = select(turns.c.guild_id).distinct().order_by(turns.c.guild_id)
        async with self._tx.read() as connection:
            return list((await connection.execute(statement)).scalars())

    async def delete(self, turn_id: int) -> None:
        """Delete one turn (a question withdrawn because its speaker went on talking)."""
        try:
            async with self._tx.write() as connection:
                await connection.execute(delete(turns).where(turns.c.id == turn_id))
        finally:
            # Its guild is not known here: a window holding it is dropped (the next older turn
            # moves into it); any read in flight is not kept.
            self._changed(None, drop=False)
            for guild_id in [g for g, w in self._windows.items() if any(t.id == turn_id for t in w.newest_first)]:
                self._windows.pop(guild_id)

    async def clear(self, guild_id: int) -> int:
        """Delete a guild's whole history; returns how many turns were removed."""
        try:
            async with self._tx.write() as connection:
                result = await connection.execute(delete(turns).where(turns.c.guild_id == guild_id))
        finally:
            self._changed(guild_id, drop=True)
        return result.rowcount

    async def delete_for_speaker(self, guild_id: int, speaker_id: int) -> int:
        """Delete what one member said in one guild ("forget me"); returns the count."""
        statement = delete(turns).where(turns.c.guild_id == guild_id, turns.c.speaker_id == speaker_id)
        try:
            async with self._tx.write() as connection:
                result = await connection.execute(statement)
        finally:
            self._changed(guild_id, drop=True)
        return result.rowcount

    async def for_speaker(self, guild_id: int, speaker_id: int) -> list[Turn]:
        """Everything one member said in one guild, oldest first (for a data export)."""
        statement = (
            select(*_COLUMNS)
            .where(turns.c.guild_id == guild_id, turns.c.speaker_id == speaker_id)
            .order_by(*_OLDEST_FIRST)
        )
        async with self._tx.read() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [_to_turn(row) for row in rows]

    async def purge_older_than(self, cutoff: datetime, guild_id: int | None = None) -> int:
        """Delete turns created strictly before ``cutoff``, in one guild or (None) in all."""
        require_aware(cutoff, "cutoff")
        statement = delete(turns).where(turns.c.created_at < cutoff)
        if guild_id is not None:
            statement = statement.where(turns.c.guild_id == guild_id)
        try:
            async with self._tx.write() as connection:
                result = await connection.execute(statement)
        finally:
            self._changed(guild_id, drop=True)
        return result.rowcount
