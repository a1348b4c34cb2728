"""How long conversation text is kept: each guild's ``retention_days``, purged hourly."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from bot.store.models import utc_now
from bot.tasks import Worker

if TYPE_CHECKING:
    from bot.store import Database

log = logging.getLogger(__name__)


async def purge_guild(database: Database, guild_id: int, now: dt.datetime) -> int:
    """Delete the guild's turns older than its retention period; returns how many."""
    settings = await database.guilds.get(guild_id)
    cutoff = now - dt.timedelta(days=settings.retention_days)
    return await database.turns.purge_older_than(cutoff, guild_id=guild_id)


class RetentionPurger:
    """Deletes turns older than each guild's ``retention_days``: now via ``run_once``, or every
    ``interval`` seconds once ``start``-ed. Clock and sleep are injected so tests never wait."""

    def __init__(self, *, database: Database, clock: Callable[[], dt.datetime] = utc_now,
                 interval: float = 3600.0, first_delay: float = 60.0,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        self._db = database
        self._clock = clock
        self._interval = interval
        self._first_delay = first_delay
        self._sleep = sleep
        self._worker = Worker(self._run, name="retention-purge")

    async def run_once(self, guild_ids: Iterable[int] | None = None) -> dict[int, int]:
        """One sweep over ``guild_ids`` (default: every guild with stored text, including guilds
        the bot has left); removed turns per guild."""
        removed: dict[int, int] = {}
        if guild_ids is None:
            guild_ids = await self._db.turns.guild_ids()
        for guild_id in list(guild_ids):
            count = await purge_guild(self._db, guild_id, self._clock())
            if count:
                removed[guild_id] = count
                log.info("Guild %s: retention purge removed %d turns", guild_id, count)
        return removed

    def start(self) -> None:
        self._worker.start()

    async def stop(self) -> None:
        await self._worker.stop()

    async def _run(self) -> None:
        # The first sweep waits a little so start-up (gateway, command sync) goes first.
        await self._sleep(self._first_delay)
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("Retention purge failed; trying again next interval")
            await self._sleep(self._interval)
