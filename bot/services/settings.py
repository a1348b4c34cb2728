"""A guild's behaviour settings: read by everyone, changed by admins, validated here."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bot.errors import UserFacingError
from bot.store.repositories.guilds import MAX_VOCABULARY

if TYPE_CHECKING:
    from bot.store import Database, GuildSettings
    from bot.store.models import AddressingMode

PERSONA_LIMIT = 1000
WAKE_WORD_LIMIT = 32


class SettingsService:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def get(self, guild_id: int) -> GuildSettings:
        return await self._db.guilds.get(guild_id)

    async def set_addressing(self, guild_id: int, mode: AddressingMode) -> GuildSettings:
        return await self._db.guilds.update(guild_id, addressing_mode=mode)

    async def set_wake_word(self, guild_id: int, word: str | None) -> str | None:
        """The cleaned word now in force; None means the bot's display name."""
        cleaned = (word or "").strip() or None
        if cleaned is not None and (len(cleaned) > WAKE_WORD_LIMIT or not any(ch.isalnum() for ch in cleaned)):
            raise UserFacingError(f"A wake word is a name or a short word (at most {WAKE_WORD_LIMIT} characters).")
        await self._db.guilds.update(guild_id, wake_word=cleaned)
        return cleaned

    async def set_persona(self, guild_id: int, text: str | None) -> str | None:
        cleaned = (text or "").strip() or None
        if cleaned is not None and len(cleaned) > PERSONA_LIMIT:
            raise UserFacingError(f"Keep the persona under {PERSONA_LIMIT} characters.")
        await self._db.guilds.update(guild_id, persona=cleaned)
        return cleaned

    async def set_text_channel(self, guild_id: int, channel_id: int | None) -> GuildSettings:
        return await self._db.guilds.update(guild_id, text_channel_id=channel_id)

    async def set_autojoin(self, guild_id: int, channel_id: int | None) -> GuildSettings:
        return await self._db.guilds.update(guild_id, autojoin_channel_id=channel_id)

    async def set_language(self, guild_id: int, code: str) -> str | None:
        """``auto`` (None: detect it) or a two-letter code; returns what is now in force."""
        cleaned = code.strip().lower()
        if cleaned != "auto" and re.fullmatch(r"[a-z]{2}", cleaned) is None:
            raise UserFacingError("Use `auto` or a two-letter language code such as `en`, `fr` or `de`.")
        language = None if cleaned == "auto" else cleaned
        await self._db.guilds.update(guild_id, language=language)
        return language

    async def set_vocabulary(self, guild_id: int, terms: str | None) -> str | None:
        cleaned = ", ".join(t.strip() for t in (terms or "").split(",") if t.strip()) or None
        if cleaned is not None and len(cleaned) > MAX_VOCABULARY:
            raise UserFacingError(f"Keep the vocabulary under {MAX_VOCABULARY} characters.")
        await self._db.guilds.update(guild_id, vocabulary=cleaned)
        return cleaned

    async def set_bot_heard(self, guild_id: int, bot_id: int, heard: bool) -> None:
        current = await self._db.guilds.get(guild_id)
        ids = [i for i in (current.heard_bots or "").split(",") if i and i != str(bot_id)]
        if heard:
            ids.append(str(bot_id))
        await self._db.guilds.update(guild_id, heard_bots=",".join(ids) or None)
