"""Helpers shared by the store tests."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from bot.store.migrations import MIGRATIONS

REPO_ROOT = Path(__file__).resolve().parents[3]  # where a child process finds the bot package
LATEST = len(MIGRATIONS)


class FakeClock:
    """A settable 'now' so timestamps in tests are exact and nothing sleeps."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'voxcord.db'}"


def sqlite_rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    # A plain sqlite3 connection: checks what is really in the file, not what the store says.
    with sqlite3.connect(path) as connection:
        return connection.execute(sql).fetchall()
