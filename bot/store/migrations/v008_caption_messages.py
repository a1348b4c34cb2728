"""V8: which caption messages the bot posted, and whose each line is, so erasure and retention reach them.

No caption text is stored: each line is a span (``span_start``..``span_end``) of the message's
content, which the bot reads back from Discord when it must cut a member's lines out.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Integer, MetaData, Table, text
from sqlalchemy.engine import Connection


def upgrade(connection: Connection) -> None:
    metadata = MetaData()
    Table(
        "caption_messages",
        metadata,
        # Discord snowflakes are unique across channels, so the message id alone is the key.
        Column("message_id", BigInteger, primary_key=True, autoincrement=False),
        Column("guild_id", BigInteger, nullable=False),
        Column("channel_id", BigInteger, nullable=False),
        Column("posted_at", DateTime(timezone=True), nullable=False),
        # The content's length as posted or last edited: a different length read back means the
        # stored spans no longer describe the message.
        Column("length", Integer, nullable=False),
    )
    Table(
        "caption_lines",
        metadata,
        Column("message_id", BigInteger, primary_key=True, autoincrement=False),
        Column("position", Integer, primary_key=True, autoincrement=False),
        # Whose line: the speaker, or for the bot's reply the member it answered; NULL: nobody's.
        Column("user_id", BigInteger, nullable=True),
        Column("span_start", Integer, nullable=False),
        Column("span_end", Integer, nullable=False),
        # Set by forget-me; the row goes once Discord confirmed the line is gone.
        Column("forgotten", Boolean, nullable=False),
    )
    metadata.create_all(connection, checkfirst=False)
    # Retention deletes a guild's messages by age; forget-me finds one member's lines.
    connection.execute(text("CREATE INDEX ix_caption_messages_guild_posted ON caption_messages (guild_id, posted_at)"))
    connection.execute(text("CREATE INDEX ix_caption_lines_user ON caption_lines (user_id)"))
