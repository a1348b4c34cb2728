"""V7: the voice channel a guild's bot joins by itself when a member enters it; NULL means off."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection


def upgrade(connection: Connection) -> None:
    # Nullable, no default: no table rewrite, and every existing guild keeps auto-join off.
    connection.execute(text("ALTER TABLE guild_settings ADD COLUMN autojoin_channel_id BIGINT"))
