"""One repository per aggregate; every query is keyed by guild_id so guilds never see each other."""

from __future__ import annotations

from bot.store.repositories.captions import CaptionRepository
from bot.store.repositories.clips import VoiceClipRepository
from bot.store.repositories.guilds import GuildSettingsRepository, InvalidSettingError
from bot.store.repositories.privacy import PrivacyRepository
from bot.store.repositories.turns import TurnRepository
from bot.store.repositories.usage import UsageRepository

__all__ = [
    "CaptionRepository",
    "GuildSettingsRepository",
    "InvalidSettingError",
    "PrivacyRepository",
    "TurnRepository",
    "UsageRepository",
    "VoiceClipRepository",
]
