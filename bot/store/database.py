"""The store's entry point: open a database, migrate it, hand out repositories."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Generator, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.engine import Transactions, create_engine
from bot.store.migrations import MIGRATIONS, Migration
from bot.store.migrator import current_version, migrate
from bot.store.models import utc_now
from bot.store.repositories import (
    CaptionRepository,
    GuildSettingsRepository,
    PrivacyRepository,
    TurnRepository,
    UsageRepository,
    VoiceClipRepository,
)
from bot.store.url import parse_database_url, safe_url, sqlite_path

log = logging.getLogger(__name__)


class DatabaseOpenError(RuntimeError):
    """The database could not be reached or migrated; the message is safe to print (no password)."""


class Database:
    """An open, migrated database and its repositories.

    Build it with ``await Database.open(url)`` or ``async with Database.open(url) as db``.
    """

    guilds: GuildSettingsRepository
    turns: TurnRepository
    clips: VoiceClipRepository
    usage: UsageRepository
    privacy: PrivacyRepository
    captions: CaptionRepository

    def __init__(self, engine: AsyncEngine, url: URL, *, clock: Callable[[], datetime],
                 sole_writer: bool = True) -> None:
        self._engine = engine
        self._url = url
        # True when no other process writes this database: reads of guild settings, recent
        # history and clip absence are then kept in memory (see the repositories); with shard
        # groups or REDIS_URL, other processes write it too and every read goes to the database.
        self.sole_writer = sole_writer
        self._transactions = transactions = Transactions(engine)
        self.guilds = GuildSettingsRepository(transactions, clock=clock, remember=sole_writer)
        self.turns = TurnRepository(transactions, clock=clock, remember=sole_writer)
        self.clips = VoiceClipRepository(transactions, clock=clock, remember=sole_writer)
        self.usage = UsageRepository(transactions, clock=clock)
        self.privacy = PrivacyRepository(transactions, clock=clock)
        self.captions = CaptionRepository(transactions, clock=clock)

    @classmethod
    def open(
        cls,
        url: str,
        *,
        echo: bool = False,
        clock: Callable[[], datetime] = utc_now,
        migrations: Sequence[Migration] = MIGRATIONS,
        sole_writer: bool = True,
    ) -> _OpenDatabase:
        """Connect to ``url`` (see ``parse_database_url``) and apply pending migrations.

        Await the result for a Database, or use it with ``async with`` to close it on exit.
        Raises ValueError for an unusable URL and DatabaseOpenError if the database cannot be
        reached or migrated. ``migrations`` is for tests of the migration mechanism.
        ``sole_writer=False`` when other processes write the same database (no reads kept in memory).
        """
        return _OpenDatabase(cls._open(url, echo=echo, clock=clock, migrations=migrations, sole_writer=sole_writer))

    @classmethod
    async def _open(
        cls,
        url: str,
        *,
        echo: bool,
        clock: Callable[[], datetime],
        migrations: Sequence[Migration],
        sole_writer: bool,
    ) -> Database:
        parsed = parse_database_url(url)
        path = sqlite_path(parsed)
        if path is not None:
            # SQLite creates the file but not its folder; data/ is absent on a fresh checkout.
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, echo=echo)
        try:
            version = await migrate(engine, clock=clock, migrations=migrations)
        except BaseException as error:
            await engine.dispose()
            if isinstance(error, SQLAlchemyError | OSError):
                raise DatabaseOpenError(
                    f"cannot open database {safe_url(parsed)}: {type(error).__name__}: {error}"
                ) from error
            raise
        log.info("Database %s ready at schema version %d", safe_url(parsed), version)
        return cls(engine, parsed, clock=clock, sole_writer=sole_writer)

    @property
    def url(self) -> str:
        """The database URL with any password masked."""
        return safe_url(self._url)

    @property
    def dialect(self) -> str:
        """'sqlite' or 'postgresql'."""
        return self._engine.dialect.name

    async def schema_version(self) -> int:
        return await current_version(self._engine)

    async def close(self) -> None:
        """Write the inserts still queued, then close every pooled connection."""
        await self._transactions.close()
        await self._engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"Database({self.url!r})"


class _OpenDatabase:
    """What Database.open returns: awaitable, and usable as ``async with``."""

    __slots__ = ("_coroutine", "_database")

    def __init__(self, coroutine: Coroutine[Any, Any, Database]) -> None:
        self._coroutine = coroutine
        self._database: Database | None = None

    def __await__(self) -> Generator[Any, None, Database]:
        return self._coroutine.__await__()

    async def __aenter__(self) -> Database:
        self._database = await self._coroutine
        return self._database

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._database is not None:
            await self._database.close()
