"""V6 (issue 13): a clip's registered Mistral voice and its compact reference, computed once."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection


def upgrade(connection: Connection) -> None:
    # Nullable, no default: added without a table rewrite. NULL/NULL is a clip not prepared yet
    # (every existing clip): the bot registers it or computes its reference on first use.
    binary = "BYTEA" if connection.dialect.name == "postgresql" else "BLOB"
    connection.execute(text("ALTER TABLE voice_clips ADD COLUMN voice_id TEXT"))
    connection.execute(text(f"ALTER TABLE voice_clips ADD COLUMN reference {binary}"))
