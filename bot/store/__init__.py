"""Storage: repositories over SQLite (default) or PostgreSQL, with numbered migrations.

Usage::

    async with Database.open(settings.database_url) as db:
        settings = await db.guilds.get(guild_id)
"""

from __future__ import annotations

from bot.store.database import Database, DatabaseOpenError
from bot.store.migrator import SchemaTooNewError
from bot.store.models import CaptionLine, CaptionMessage, GuildSettings, Turn, UsageRecord, VoiceClip
from bot.store.repositories import (
    CaptionRepository,
    GuildSettingsRepository,
    InvalidSettingError,
    PrivacyRepository,
    TurnRepository,
    UsageRepository,
    VoiceClipRepository,
)
from bot.store.url import parse_database_url

__all__ = [
    "CaptionLine",
    "CaptionMessage",
    "CaptionRepository",
    "Database",
    "DatabaseOpenError",
    "GuildSettings",
    "GuildSettingsRepository",
    "InvalidSettingError",
    "PrivacyRepository",
    "SchemaTooNewError",
    "Turn",
    "TurnRepository",
    "UsageRecord",
    "UsageRepository",
    "VoiceClip",
    "VoiceClipRepository",
    "parse_database_url",
]
