"""The conversation tests' database: a fresh SQLite file per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.store import Database


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    async with Database.open(f"sqlite:///{tmp_path / 'voxcord.db'}") as db:
        yield db
