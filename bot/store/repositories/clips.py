"""The guild's reference voice clip for TTS cloning: at most one per guild."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Final

from sqlalchemy import delete, select, update

from bot.store.models import VoiceClip
from bot.store.repositories._base import Repository
from bot.store.schema import voice_clips

if TYPE_CHECKING:
    from bot.store.engine import Transactions

_COLUMNS: Final = tuple(voice_clips.c)


class VoiceClipRepository(Repository):
    """That a guild has no clip is remembered: every reply asks, and at 50 talking guilds those
    reads queued for the pool's connections in front of the chat request (bench/scaling.py). A
    stored clip (up to ~1.4 MB of audio) is read each time, not kept in memory. Every write here
    forgets the guild's absence."""

    __slots__ = ("_absent", "_changes", "_remember")

    def __init__(self, transactions: Transactions, *, clock: Callable[[], datetime], remember: bool = True) -> None:
        super().__init__(transactions, clock=clock)
        self._remember = remember  # False: another process may set a clip, so every read is fresh
        self._absent: set[int] = set()
        self._changes: dict[int, int] = {}  # writes per guild: a read that overlapped one is not kept

    def _changed(self, guild_id: int) -> None:
        self._absent.discard(guild_id)
        self._changes[guild_id] = self._changes.get(guild_id, 0) + 1

    async def get(self, guild_id: int) -> VoiceClip | None:
        if guild_id in self._absent:
            return None
        changes = self._changes.get(guild_id, 0)
        statement = select(*_COLUMNS).where(voice_clips.c.guild_id == guild_id)
        async with self._tx.read() as connection:
            row = (await connection.execute(statement)).mappings().one_or_none()
        if row is None:
            if self._remember and self._changes.get(guild_id, 0) == changes:
                self._absent.add(guild_id)
            return None
        # Drivers may hand back memoryview (asyncpg: bytes; some: memoryview); callers want bytes.
        reference = row["reference"]
        return VoiceClip(**{**row, "audio": bytes(row["audio"]),
                            "reference": None if reference is None else bytes(reference)})

    async def set(self, clip: VoiceClip) -> None:
        """Replace the guild's clip in one statement: readers see the old clip or the new, never none."""
        values = dataclasses.asdict(clip)
        statement = self._tx.upsert(voice_clips).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=[voice_clips.c.guild_id],
            set_={name: statement.excluded[name] for name in values if name != "guild_id"},
        )
        try:
            async with self._tx.write() as connection:
                await connection.execute(statement)
        finally:
            self._changed(clip.guild_id)

    async def set_voice(self, guild_id: int, sha256: str, *, voice_id: str | None, reference: bytes | None) -> bool:
        """Record how the clip ``sha256`` is spoken, once; False (nothing written) if the guild's
        clip has meanwhile been replaced or removed, or another process prepared it first, so a
        late result never lands on another clip nor overwrites a voice id still in use."""
        statement = (
            update(voice_clips)
            .where(voice_clips.c.guild_id == guild_id, voice_clips.c.sha256 == sha256,
                   voice_clips.c.voice_id.is_(None), voice_clips.c.reference.is_(None))
            .values(voice_id=voice_id, reference=reference)
        )
        try:
            async with self._tx.write() as connection:
                result = await connection.execute(statement)
        finally:
            self._changed(guild_id)
        return result.rowcount > 0

    async def unprepared(self) -> list[int]:
        """Guilds whose clip has neither a voice id nor a reference yet (stored before migration 6)."""
        statement = select(voice_clips.c.guild_id).where(
            voice_clips.c.voice_id.is_(None), voice_clips.c.reference.is_(None)
        )
        async with self._tx.read() as connection:
            return list((await connection.execute(statement)).scalars())

    async def registered(self) -> list[tuple[int, str]]:
        """``(guild_id, voice_id)`` of every clip spoken by a registered voice."""
        statement = select(voice_clips.c.guild_id, voice_clips.c.voice_id).where(voice_clips.c.voice_id.is_not(None))
        async with self._tx.read() as connection:
            return [(row.guild_id, row.voice_id) for row in await connection.execute(statement)]

    async def drop_voice(self, guild_id: int, voice_id: str) -> bool:
        """Forget a registered voice Mistral no longer has; the clip is then spoken from its reference."""
        statement = (
            update(voice_clips)
            .where(voice_clips.c.guild_id == guild_id, voice_clips.c.voice_id == voice_id)
            .values(voice_id=None)
        )
        try:
            async with self._tx.write() as connection:
                result = await connection.execute(statement)
        finally:
            self._changed(guild_id)
        return result.rowcount > 0

    async def delete(self, guild_id: int) -> bool:
        """Remove the guild's clip; False if it had none."""
        try:
            async with self._tx.write() as connection:
                result = await connection.execute(delete(voice_clips).where(voice_clips.c.guild_id == guild_id))
        finally:
            self._changed(guild_id)
        return result.rowcount > 0
