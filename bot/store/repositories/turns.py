"""Conversation history: what was said in a guild, by whom, in order."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import RowMapping

from bot.store.models import Turn, require_aware
from bot.store.repositories._base import Repository
from bot.store.schema import turns

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


class TurnRepository(Repository):
    __slots__ = ()

    async def add(self, turn: Turn) -> Turn:
        """Store a new turn (id None) and return it with its id."""
        new_id = await self._tx.insert(turns, _values(turn), returning=turns.c.id)
        return dataclasses.replace(turn, id=new_id)

    async def add_many(self, new_turns: Sequence[Turn]) -> list[Turn]:
        """Store all turns or none of them; returns them with ids, in the order given."""
        if not new_turns:
            return []
        rows = [_values(turn) for turn in new_turns]
        # sort_by_parameter_order: SQLAlchemy batches multi-row INSERT ... RETURNING, and
        # without it the ids could come back in a different order than the turns.
        statement = insert(turns).returning(turns.c.id, sort_by_parameter_order=True)
        async with self._tx.write() as connection:
            ids = (await connection.execute(statement, rows)).scalars().all()
        return [dataclasses.replace(turn, id=new_id) for turn, new_id in zip(new_turns, ids, strict=True)]

    async def recent(self, guild_id: int, *, limit: int, max_chars: int | None = None) -> list[Turn]:
        """The newest turns of a guild, oldest first: at most ``limit`` turns and, if given, at
        most ``max_chars`` characters of text in total.

        The result is always an unbroken run ending at the newest turn: a long turn that does
        not fit ends the run rather than being skipped, so the model never sees a gap.
        """
        if limit <= 0:
            return []
        statement = select(*_COLUMNS).where(turns.c.guild_id == guild_id).order_by(*_NEWEST_FIRST).limit(limit)
        async with self._tx.read() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        chosen: list[Turn] = []
        used = 0
        for row in rows:
            turn = _to_turn(row)
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
        async with self._tx.write() as connection:
            await connection.execute(delete(turns).where(turns.c.id == turn_id))

    async def clear(self, guild_id: int) -> int:
        """Delete a guild's whole history; returns how many turns were removed."""
        async with self._tx.write() as connection:
            result = await connection.execute(delete(turns).where(turns.c.guild_id == guild_id))
        return result.rowcount

    async def delete_for_speaker(self, guild_id: int, speaker_id: int) -> int:
        """Delete what one member said in one guild ("forget me"); returns the count."""
        statement = delete(turns).where(turns.c.guild_id == guild_id, turns.c.speaker_id == speaker_id)
        async with self._tx.write() as connection:
            result = await connection.execute(statement)
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
        async with self._tx.write() as connection:
            result = await connection.execute(statement)
        return result.rowcount
