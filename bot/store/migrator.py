"""Apply pending numbered migrations, each in its own transaction, safely under concurrent opens."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final

from sqlalchemy import Column, Integer, MetaData, Table, Text, func, insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.engine import Transactions
from bot.store.migrations import MIGRATIONS, Migration
from bot.store.types import UTCDateTime

log = logging.getLogger(__name__)

# Any fixed 64-bit key works; this is "voxcord" in ASCII so it is recognisable in pg_locks.
_PG_MIGRATION_LOCK: Final = 0x766F78636F7264

_metadata = MetaData()
schema_version = Table(
    "schema_version",
    _metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", Text, nullable=False),
    Column("applied_at", UTCDateTime, nullable=False),
)


class SchemaTooNewError(RuntimeError):
    """The database was migrated by a newer Voxcord; running older code on it could corrupt it."""


def check_sequence(migrations: Sequence[Migration]) -> None:
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migration versions must be 1..N without gaps, got {versions}")


async def migrate(
    engine: AsyncEngine,
    *,
    clock: Callable[[], datetime],
    migrations: Sequence[Migration] = MIGRATIONS,
) -> int:
    """Bring the schema up to the last of ``migrations``; return the resulting version.

    One transaction per migration, so a failure leaves the database at the last good version.
    Each transaction first takes the database-wide write lock (SQLite: BEGIN IMMEDIATE;
    PostgreSQL: an advisory lock held until commit) and only then reads the current version,
    so two processes opening a fresh database at once apply each migration exactly once.
    """
    check_sequence(migrations)
    transactions = Transactions(engine)
    while True:
        async with transactions.write() as connection:
            version, applied = await connection.run_sync(_apply_next, migrations, clock)
        if not applied:
            return version


def _apply_next(
    connection: Connection, migrations: Sequence[Migration], clock: Callable[[], datetime]
) -> tuple[int, bool]:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
    schema_version.create(connection, checkfirst=True)
    current = int(connection.execute(select(func.coalesce(func.max(schema_version.c.version), 0))).scalar_one())
    latest = migrations[-1].version if migrations else 0
    if current > latest:
        raise SchemaTooNewError(
            f"database schema is at version {current} but this Voxcord knows only up to {latest}; "
            "upgrade Voxcord or restore a backup"
        )
    if current == latest:
        return current, False
    migration = migrations[current]  # versions are 1..N, so index `current` is version current+1
    log.info("Applying database migration V%d: %s", migration.version, migration.description)
    migration.upgrade(connection)
    connection.execute(
        insert(schema_version).values(version=migration.version, description=migration.description, applied_at=clock())
    )
    return migration.version, True


async def current_version(engine: AsyncEngine) -> int:
    async with Transactions(engine).read() as connection:
        return await connection.run_sync(_read_version)


def _read_version(connection: Connection) -> int:
    if not connection.dialect.has_table(connection, schema_version.name):
        return 0
    return int(connection.execute(select(func.coalesce(func.max(schema_version.c.version), 0))).scalar_one())
