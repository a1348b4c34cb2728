"""Caption messages the bot posted and whose each line is: what forget-me and retention act on.

No caption text is kept here: a line is a span of the message's content (read back from Discord
when lines must be cut out), so the database holds no more of what was said than before captions.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, delete, exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.models import CaptionLine, CaptionMessage, require_aware
from bot.store.repositories._base import Repository
from bot.store.schema import caption_lines, caption_messages

_IN_CHUNK: Final = 500  # ids per IN (...) list: well under SQLite's 32,766 bound parameters


def _line_rows(message_id: int, lines: Sequence[CaptionLine]) -> list[dict[str, Any]]:
    return [
        {"message_id": message_id, "position": position, "user_id": line.user_id, "span_start": line.start,
         "span_end": line.end, "forgotten": line.forgotten}
        for position, line in enumerate(lines)
    ]


class CaptionRepository(Repository):
    __slots__ = ()

    async def add(self, message: CaptionMessage) -> None:
        """Record a posted caption message and its lines, together."""
        async with self._tx.write() as connection:
            await connection.execute(insert(caption_messages).values(
                message_id=message.message_id, guild_id=message.guild_id, channel_id=message.channel_id,
                posted_at=message.posted_at, length=message.length))
            if message.lines:
                await connection.execute(insert(caption_lines), _line_rows(message.message_id, message.lines))

    async def get(self, message_id: int) -> CaptionMessage | None:
        async with self._tx.read() as connection:
            found = await self._messages(connection, caption_messages.c.message_id == message_id)
        return found[0] if found else None

    async def forget_user(self, guild_id: int, user_id: int) -> int:
        """Mark the member's lines in the guild's caption messages to be cut out; returns how many."""
        in_guild = select(caption_messages.c.message_id).where(caption_messages.c.guild_id == guild_id)
        async with self._tx.write() as connection:
            result = await connection.execute(
                update(caption_lines)
                .where(caption_lines.c.user_id == user_id, caption_lines.c.message_id.in_(in_guild))
                .values(forgotten=True))
        return result.rowcount

    async def with_forgotten(self, guild_id: int, user_id: int | None = None) -> list[CaptionMessage]:
        """The guild's messages that still hold lines marked forgotten (``user_id``'s, if given),
        oldest first."""
        marked = exists().where(caption_lines.c.message_id == caption_messages.c.message_id,
                                caption_lines.c.forgotten.is_(True))
        if user_id is not None:
            marked = marked.where(caption_lines.c.user_id == user_id)
        async with self._tx.read() as connection:
            return await self._messages(connection, caption_messages.c.guild_id == guild_id, marked)

    async def older_than(self, guild_id: int, cutoff: datetime) -> list[CaptionMessage]:
        """The guild's messages posted strictly before ``cutoff``, oldest first."""
        require_aware(cutoff, "cutoff")
        async with self._tx.read() as connection:
            return await self._messages(
                connection, caption_messages.c.guild_id == guild_id, caption_messages.c.posted_at < cutoff)

    async def guild_ids(self) -> list[int]:
        """Every guild with recorded caption messages, including guilds the bot has left."""
        statement = select(caption_messages.c.guild_id).distinct().order_by(caption_messages.c.guild_id)
        async with self._tx.read() as connection:
            return list((await connection.execute(statement)).scalars())

    async def rewrite(self, message_id: int, length: int, lines: Sequence[CaptionLine]) -> None:
        """The message was edited to hold only ``lines`` (``length`` characters in all)."""
        async with self._tx.write() as connection:
            await connection.execute(
                update(caption_messages).where(caption_messages.c.message_id == message_id).values(length=length))
            await connection.execute(delete(caption_lines).where(caption_lines.c.message_id == message_id))
            if lines:
                await connection.execute(insert(caption_lines), _line_rows(message_id, lines))

    async def drop(self, message_id: int) -> None:
        """The message is gone from Discord: forget it and its lines."""
        async with self._tx.write() as connection:
            await connection.execute(delete(caption_lines).where(caption_lines.c.message_id == message_id))
            await connection.execute(delete(caption_messages).where(caption_messages.c.message_id == message_id))

    @staticmethod
    async def _messages(connection: AsyncConnection, *where: ColumnElement[bool]) -> list[CaptionMessage]:
        statement = (select(caption_messages).where(*where)
                     .order_by(caption_messages.c.posted_at, caption_messages.c.message_id))
        heads = (await connection.execute(statement)).mappings().all()
        lines: dict[int, list[CaptionLine]] = {}
        ids = [int(head["message_id"]) for head in heads]
        for first in range(0, len(ids), _IN_CHUNK):
            rows = (await connection.execute(
                select(caption_lines).where(caption_lines.c.message_id.in_(ids[first:first + _IN_CHUNK]))
                .order_by(caption_lines.c.message_id, caption_lines.c.position))).mappings().all()
            for row in rows:
                lines.setdefault(int(row["message_id"]), []).append(CaptionLine(
                    user_id=row["user_id"], start=row["span_start"], end=row["span_end"],
                    forgotten=row["forgotten"]))
        return [
            CaptionMessage(guild_id=head["guild_id"], channel_id=head["channel_id"], message_id=head["message_id"],
                           posted_at=head["posted_at"], length=head["length"],
                           lines=tuple(lines.get(int(head["message_id"]), ())))
            for head in heads
        ]
