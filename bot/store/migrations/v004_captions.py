"""V4: the channel (or thread) where a guild's captions go; NULL means captions are off."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection


def upgrade(connection: Connection) -> None:
    # Nullable, no default: added without a table rewrite on both databases, and every existing
    # guild keeps captions off until an admin turns them on (/settings captions).
    connection.execute(text("ALTER TABLE guild_settings ADD COLUMN captions_channel_id BIGINT"))
