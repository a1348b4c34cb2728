"""Per-guild settings: one row per guild, absent until an admin changes something."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import select
from sqlalchemy.engine import RowMapping

from bot.store.models import ADDRESSING_MODES, CONSENT_MODES, GuildSettings
from bot.store.repositories._base import Repository
from bot.store.schema import guild_settings

if TYPE_CHECKING:
    from bot.store.engine import Transactions

_COLUMNS: Final = tuple(guild_settings.c)
# Fields an admin may change; guild_id is the key and updated_at is the store's to set.
SETTABLE_FIELDS: Final[frozenset[str]] = frozenset(
    f.name for f in dataclasses.fields(GuildSettings) if f.name not in {"guild_id", "updated_at"}
)
_MAX_RETENTION_DAYS: Final = 3650
MAX_VOCABULARY: Final = 1000


class InvalidSettingError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _is_int(value: object) -> bool:
    # bool is an int subclass; True must not pass as a retention of 1 day.
    return isinstance(value, int) and not isinstance(value, bool)


def _check_field(field: str, value: Any) -> None:
    if field not in SETTABLE_FIELDS:
        raise InvalidSettingError(field, f"unknown setting; known: {sorted(SETTABLE_FIELDS)}")
    match field:
        case "persona" | "wake_word":
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise InvalidSettingError(field, "must be non-empty text or None")
        case "addressing_mode":
            if value not in ADDRESSING_MODES:
                raise InvalidSettingError(field, f"must be one of {sorted(ADDRESSING_MODES)}")
        case "consent_mode":
            if value not in CONSENT_MODES:
                raise InvalidSettingError(field, f"must be one of {sorted(CONSENT_MODES)}")
        case "show_partial_transcripts":
            if not isinstance(value, bool):
                raise InvalidSettingError(field, "must be True or False")
        case "retention_days":
            if not _is_int(value) or not 1 <= value <= _MAX_RETENTION_DAYS:
                raise InvalidSettingError(field, f"must be a whole number of days, 1 to {_MAX_RETENTION_DAYS}")
        case "text_channel_id" | "captions_channel_id" | "autojoin_channel_id":
            if value is not None and (not _is_int(value) or value <= 0):
                raise InvalidSettingError(field, "must be a channel id or None")
        case (
            "turn_rate_per_minute"
            | "member_turn_rate_per_minute"
            | "member_command_rate_per_minute"
            | "command_rate_per_minute"
        ):
            if value is not None and (not _is_int(value) or value < 1):
                raise InvalidSettingError(field, "must be a positive whole number or None")
        case "language":
            if value is not None and (not isinstance(value, str) or re.fullmatch(r"[a-z]{2}", value) is None):
                raise InvalidSettingError(field, "must be a two-letter ISO 639-1 code or None (detect)")
        case "vocabulary":
            if value is not None and (not isinstance(value, str) or not value.strip() or len(value) > MAX_VOCABULARY):
                raise InvalidSettingError(field, f"must be non-empty text of at most {MAX_VOCABULARY} characters")
        case "heard_bots":
            if value is not None and (not isinstance(value, str) or re.fullmatch(r"\d+(,\d+)*", value) is None):
                raise InvalidSettingError(field, "must be comma-separated user ids or None")
        case "monthly_budget_usd":
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf")
            ):
                raise InvalidSettingError(field, "must be a non-negative amount or None")


def _to_settings(row: RowMapping) -> GuildSettings:
    return GuildSettings(**row)


class GuildSettingsRepository(Repository):
    """Reads are served from memory after the first: every utterance and every turn asks for its
    guild's settings (3-5 times before the speech even reaches the STT), and at 50 talking guilds
    those reads queued behind each other for the pool's connections, holding the STT connection
    back 0.5-3 s (bench/scaling.py, docs/decisions.md). The process that serves a guild is the only
    writer of its settings (its commands reach the shard that serves it), through ``update`` here,
    which drops the cached copy; a change made outside the bot takes effect after a restart."""

    __slots__ = ("_cache", "_remember", "_writes")

    def __init__(self, transactions: Transactions, *, clock: Callable[[], datetime], remember: bool = True) -> None:
        super().__init__(transactions, clock=clock)
        self._remember = remember  # False: another process may write them, so every read is fresh
        self._cache: dict[int, GuildSettings] = {}
        self._writes: dict[int, int] = {}  # updates per guild: a read that overlapped one is not kept

    async def get(self, guild_id: int) -> GuildSettings:
        """The guild's settings, or the defaults (with updated_at None) if it never saved any."""
        cached = self._cache.get(guild_id)
        if cached is not None:
            return cached
        writes = self._writes.get(guild_id, 0)
        async with self._tx.read() as connection:
            result = await connection.execute(select(*_COLUMNS).where(guild_settings.c.guild_id == guild_id))
            row = result.mappings().one_or_none()
        settings = GuildSettings(guild_id=guild_id) if row is None else _to_settings(row)
        if self._remember and self._writes.get(guild_id, 0) == writes:
            self._cache[guild_id] = settings
        return settings

    async def update(self, guild_id: int, /, **changes: Any) -> GuildSettings:
        """Change some settings, creating the row from defaults if needed; returns the result.

        One INSERT ... ON CONFLICT DO UPDATE statement: two admins changing different settings
        at once both keep their change, and there is no read-then-write window.
        """
        for field, value in changes.items():
            _check_field(field, value)
        if not changes:
            return await self.get(guild_id)
        now = self._clock()
        defaults = dataclasses.asdict(GuildSettings(guild_id=guild_id))
        values = {**defaults, **changes, "updated_at": now}
        insert = self._tx.upsert(guild_settings).values(**values)
        statement = insert.on_conflict_do_update(
            index_elements=[guild_settings.c.guild_id],
            set_={name: insert.excluded[name] for name in (*changes, "updated_at")},
        ).returning(*_COLUMNS)
        # Dropped before and after: a read in flight meanwhile, or a concurrent update committing in
        # another order (PostgreSQL), must not leave an older row cached.
        self._forget(guild_id)
        try:
            async with self._tx.write() as connection:
                row = (await connection.execute(statement)).mappings().one()
        finally:
            self._forget(guild_id)
        return _to_settings(row)

    def _forget(self, guild_id: int) -> None:
        self._cache.pop(guild_id, None)
        self._writes[guild_id] = self._writes.get(guild_id, 0) + 1
