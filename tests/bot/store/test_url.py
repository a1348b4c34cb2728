from __future__ import annotations

from pathlib import Path

import pytest

from bot.store.url import parse_database_url, safe_url, sqlite_path


@pytest.mark.parametrize(
    ("raw", "driver", "database"),
    [
        ("sqlite:///relative.db", "sqlite+aiosqlite", "relative.db"),
        ("sqlite:///data/voxcord.db", "sqlite+aiosqlite", "data/voxcord.db"),
        ("sqlite:////abs/path.db", "sqlite+aiosqlite", "/abs/path.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite", "x.db"),
        ("  sqlite:///padded.db\n", "sqlite+aiosqlite", "padded.db"),
        ("postgresql://user@host/db", "postgresql+asyncpg", "db"),
        ("postgres://user@host:5433/db", "postgresql+asyncpg", "db"),
        ("POSTGRESQL://user@host/db", "postgresql+asyncpg", "db"),
        ("postgresql+asyncpg://user@host/db", "postgresql+asyncpg", "db"),
    ],
)
def test_maps_user_schemes_to_async_drivers(raw: str, driver: str, database: str) -> None:
    url = parse_database_url(raw)
    assert url.drivername == driver
    assert url.database == database


def test_postgres_keeps_host_port_user_and_query() -> None:
    url = parse_database_url("postgres://bot:pw@db.example:6543/voxcord?ssl=require")
    assert (url.host, url.port, url.username, url.password) == ("db.example", 6543, "bot", "pw")
    assert dict(url.query) == {"ssl": "require"}


def test_sqlite_without_path_is_in_memory() -> None:
    url = parse_database_url("sqlite://")
    assert url.drivername == "sqlite+aiosqlite"
    assert sqlite_path(url) is None


def test_sqlite_path_is_the_file() -> None:
    assert sqlite_path(parse_database_url("sqlite:////srv/v/x.db")) == Path("/srv/v/x.db")
    assert sqlite_path(parse_database_url("sqlite:///rel/x.db")) == Path("rel/x.db")
    assert sqlite_path(parse_database_url("postgresql://u@h/db")) is None


@pytest.mark.parametrize(
    "raw",
    [
        "mysql://root:hunter2@host/db",
        "postgresql+psycopg2://root:hunter2@host/db",
        "redis://:hunter2@host/0",
    ],
)
def test_rejects_other_schemes_without_leaking_the_password(raw: str) -> None:
    with pytest.raises(ValueError, match="not supported") as caught:
        parse_database_url(raw)
    assert "hunter2" not in str(caught.value)
    assert "sqlite:///" in str(caught.value)  # tells the user what would work


def test_rejects_unparseable_url_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="not a valid URL") as caught:
        parse_database_url("hunter2-is-not-a-url")
    assert "hunter2" not in str(caught.value)


def test_rejects_sqlite_with_a_host() -> None:
    # sqlite://data/x.db (two slashes) would silently open a different file.
    with pytest.raises(ValueError, match="takes no host"):
        parse_database_url("sqlite://data/x.db")


def test_rejects_postgres_without_database_and_hides_password() -> None:
    with pytest.raises(ValueError, match="names no database") as caught:
        parse_database_url("postgresql://bot:hunter2@host")
    assert "hunter2" not in str(caught.value)
    assert "***" in str(caught.value)


def test_safe_url_hides_password() -> None:
    url = parse_database_url("postgresql://bot:hunter2@host/db")
    assert safe_url(url) == "postgresql+asyncpg://bot:***@host/db"
    assert "hunter2" not in repr(url)
