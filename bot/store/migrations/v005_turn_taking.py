"""V5 (issue 12): a guild's spoken language, its vocabulary for recognition, and the bots it hears."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection


def upgrade(connection: Connection) -> None:
    # Nullable, no default: added without a table rewrite on both databases; NULL keeps today's
    # behaviour (language detected, no vocabulary, no bot heard).
    connection.execute(text("ALTER TABLE guild_settings ADD COLUMN language TEXT"))
    connection.execute(text("ALTER TABLE guild_settings ADD COLUMN vocabulary TEXT"))
    connection.execute(text("ALTER TABLE guild_settings ADD COLUMN heard_bots TEXT"))
