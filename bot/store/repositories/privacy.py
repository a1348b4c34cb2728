"""Each member's explicit recording choice per guild.

Only explicit choices are stored. Whether a member with no record may be transcribed
depends on the guild's consent_mode (opt_out: yes, opt_in: no); that policy lives in the
engine, which reads status() and the guild settings.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select

from bot.store.models import require_aware
from bot.store.repositories._base import Repository
from bot.store.schema import member_privacy


class PrivacyRepository(Repository):
    __slots__ = ()

    async def set_opt(self, guild_id: int, user_id: int, opted_in: bool, at: datetime | None = None) -> None:
        """Record the member's choice (True: opted in, False: opted out), replacing any earlier one."""
        when = self._clock() if at is None else at
        require_aware(when, "at")
        statement = self._tx.upsert(member_privacy).values(
            guild_id=guild_id, user_id=user_id, opted_in=opted_in, updated_at=when
        )
        statement = statement.on_conflict_do_update(
            index_elements=[member_privacy.c.guild_id, member_privacy.c.user_id],
            set_={"opted_in": statement.excluded.opted_in, "updated_at": statement.excluded.updated_at},
        )
        async with self._tx.write() as connection:
            await connection.execute(statement)

    async def status(self, guild_id: int, user_id: int) -> bool | None:
        """True if the member opted in, False if they opted out, None if they never chose."""
        statement = select(member_privacy.c.opted_in).where(
            member_privacy.c.guild_id == guild_id, member_privacy.c.user_id == user_id
        )
        async with self._tx.read() as connection:
            return (await connection.execute(statement)).scalar_one_or_none()

    async def choices(self, guild_id: int) -> dict[int, bool]:
        """Every explicit choice in the guild, user_id -> opted_in (to warm a per-guild cache)."""
        statement = select(member_privacy.c.user_id, member_privacy.c.opted_in).where(
            member_privacy.c.guild_id == guild_id
        )
        async with self._tx.read() as connection:
            rows = (await connection.execute(statement)).all()
        return {user_id: opted_in for user_id, opted_in in rows}

    async def forget(self, guild_id: int, user_id: int) -> bool:
        """Drop the member's recorded choice (back to the guild default); False if there was none."""
        statement = delete(member_privacy).where(
            member_privacy.c.guild_id == guild_id, member_privacy.c.user_id == user_id
        )
        async with self._tx.write() as connection:
            result = await connection.execute(statement)
        return result.rowcount > 0
