"""The conversation a guild's bot remembers: what /history shows and clears."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.store import Database, Turn

SHOW_TURNS = 15


class HistoryService:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def recent(self, guild_id: int, *, limit: int = SHOW_TURNS) -> list[Turn]:
        return await self._db.turns.recent(guild_id, limit=limit)

    async def clear(self, guild_id: int) -> int:
        """Delete the guild's whole conversation history; returns how many turns."""
        return await self._db.turns.clear(guild_id)
