"""V3: a guild's own per-member voice-turn rate and slash-command rates (NULL = the operator default)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection


def upgrade(connection: Connection) -> None:
    # Nullable and without a default: both databases add such a column without rewriting the
    # table, and every existing guild keeps the operator's defaults until an admin sets its own.
    connection.execute(text("ALTER TABLE guild_settings ADD COLUMN member_turn_rate_per_minute INTEGER"))
    connection.execute(text("ALTER TABLE guild_settings ADD COLUMN member_command_rate_per_minute INTEGER"))
    connection.execute(text("ALTER TABLE guild_settings ADD COLUMN command_rate_per_minute INTEGER"))
