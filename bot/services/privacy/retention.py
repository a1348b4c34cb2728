"""How long conversation text is kept: each guild's ``retention_days``, purged hourly, caption
messages included (and caption lines a forget-me could not remove yet are retried)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from bot.store.models import utc_now
from bot.tasks import Worker

if TYPE_CHECKING:
    from bot.services.privacy.captions import CaptionEraser, CaptionsErased
    from bot.store import Database

log = logging.getLogger(__name__)


async def purge_guild(database: Database, guild_id: int, now: dt.datetime) -> int:
    """Delete the guild's turns older than its retention period; returns how many."""
    settings = await database.guilds.get(guild_id)
    cutoff = now - dt.timedelta(days=settings.retention_days)
    return await database.turns.purge_older_than(cutoff, guild_id=guild_id)


async def purge_captions(database: Database, captions: CaptionEraser, guild_id: int,
                         now: dt.datetime) -> CaptionsErased:
    """Finish the guild's pending forget-me removals, then delete its caption messages older than
    its retention period."""
    settings = await database.guilds.get(guild_id)
    retried = await captions.retry_forgotten(guild_id)
    return retried + await captions.expire(guild_id, now - dt.timedelta(days=settings.retention_days))


class RetentionPurger:
    """Deletes turns (and, given ``captions``, caption messages) older than each guild's
    ``retention_days``: now via ``run_once``, or every ``interval`` seconds once ``start``-ed.
    Clock and sleep are injected so tests never wait."""

    def __init__(self, *, database: Database, clock: Callable[[], dt.datetime] = utc_now,
                 captions: CaptionEraser | None = None,
                 interval: float = 3600.0, first_delay: float = 60.0,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        self._db = database
        self._clock = clock
        self._captions = captions
        self._interval = interval
        self._first_delay = first_delay
        self._sleep = sleep
        self._worker = Worker(self._run, name="retention-purge")

    async def run_once(self, guild_ids: Iterable[int] | None = None) -> dict[int, int]:
        """One sweep over ``guild_ids`` (default: every guild with stored text, including guilds
        the bot has left); removed turns per guild."""
        removed: dict[int, int] = {}
        if guild_ids is None:
            guild_ids = set(await self._db.turns.guild_ids())
            if self._captions is not None:
                guild_ids |= set(await self._db.captions.guild_ids())
        for guild_id in sorted(guild_ids):
            count = await purge_guild(self._db, guild_id, self._clock())
            if count:
                removed[guild_id] = count
                log.info("Guild %s: retention purge removed %d turns", guild_id, count)
            if self._captions is not None:
                erased = await purge_captions(self._db, self._captions, guild_id, self._clock())
                if erased.edited or erased.deleted or erased.pending:
                    log.info("Guild %s: caption messages edited %d, deleted %d, left for the next sweep %d",
                             guild_id, erased.edited, erased.deleted, erased.pending)
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
