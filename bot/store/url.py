"""DATABASE_URL as users write it, mapped onto the async drivers the store runs on."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

# Users write the scheme they know; the store only ships async drivers, so each accepted
# spelling maps to exactly one of them. Spelling out the driver we use is accepted too.
_DRIVERS: Final[dict[str, str]] = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}
_MEMORY: Final = ":memory:"


def parse_database_url(url: str) -> URL:
    """Return the SQLAlchemy URL for ``url`` with its async driver filled in.

    Raises ValueError with a message that never contains the URL's password.
    """
    try:
        parsed = make_url(url.strip())
    except ArgumentError:
        # The raw string may hold a password, so it stays out of the message.
        raise ValueError(
            "DATABASE_URL is not a valid URL; expected e.g. sqlite:///data/voxcord.db or postgresql://user@host/dbname"
        ) from None
    driver = _DRIVERS.get(parsed.drivername.lower())
    if driver is None:
        raise ValueError(
            f"DATABASE_URL scheme {parsed.drivername!r} is not supported; "
            "use sqlite:///path/to.db or postgresql://user@host/dbname"
        )
    parsed = parsed.set(drivername=driver)
    if driver.startswith("sqlite"):
        if parsed.host or parsed.username or parsed.password or parsed.port:
            # sqlite://host/x.db is a common slip for sqlite:///x.db; SQLAlchemy would ignore
            # the host and open a different file than the user meant.
            raise ValueError(
                "DATABASE_URL for SQLite takes no host; write sqlite:///relative.db or sqlite:////absolute/path.db"
            )
    elif not parsed.database:
        raise ValueError(
            f"DATABASE_URL {parsed.render_as_string(hide_password=True)} names no database; "
            "expected postgresql://user@host/dbname"
        )
    return parsed


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def sqlite_path(url: URL) -> Path | None:
    """The file a SQLite URL points at, or None for an in-memory database."""
    if not is_sqlite(url) or url.database in (None, "", _MEMORY):
        return None
    return Path(url.database)


def safe_url(url: URL) -> str:
    """The URL as it may appear in logs and error messages."""
    return url.render_as_string(hide_password=True)
