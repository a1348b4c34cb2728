"""Numbered schema migrations, applied in order at open (see ``bot.store.migrator``).

Each migration owns a frozen copy of the DDL it runs rather than importing ``bot.store.schema``:
the live schema describes the latest version, and reusing it here would silently change what
an old migration creates. Migrations are Python rather than .sql files because SQLite and
PostgreSQL disagree on auto-increment ids, binary and timestamp types; SQLAlchemy Core compiles
one definition into each dialect's DDL. Plain portable SQL (CREATE INDEX ...) is fine inline.

To add one: write ``vNNN_what.py`` with ``upgrade(connection)`` and append it to MIGRATIONS.
Never edit or reorder a migration that has shipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from bot.store.migrations import (
    v001_initial,
    v002_member_privacy,
    v003_guild_rate_limits,
    v004_captions,
    v005_turn_taking,
    v006_voice_registration,
    v007_autojoin,
    v008_caption_messages,
)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    # Runs inside the migration's transaction; must not commit.
    upgrade: Callable[[Connection], None]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", v001_initial.upgrade),
    Migration(2, "member privacy choices; indexes for speaker deletion and purge", v002_member_privacy.upgrade),
    Migration(3, "a guild's own member turn rate and command rates", v003_guild_rate_limits.upgrade),
    Migration(4, "the channel a guild's captions go to", v004_captions.upgrade),
    Migration(5, "a guild's language, vocabulary and heard bots", v005_turn_taking.upgrade),
    Migration(6, "a voice clip's registered voice id and compact reference", v006_voice_registration.upgrade),
    Migration(7, "the voice channel a guild's bot joins when a member enters it", v007_autojoin.upgrade),
    Migration(8, "the caption messages posted and whose each line is", v008_caption_messages.upgrade),
)
