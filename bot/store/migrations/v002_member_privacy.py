"""V2: per-member recording consent, and indexes for the deletion paths."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, MetaData, Table, text
from sqlalchemy.engine import Connection


def upgrade(connection: Connection) -> None:
    metadata = MetaData()
    Table(
        "member_privacy",
        metadata,
        Column("guild_id", BigInteger, primary_key=True, autoincrement=False),
        Column("user_id", BigInteger, primary_key=True, autoincrement=False),
        Column("opted_in", Boolean, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )
    metadata.create_all(connection, checkfirst=False)
    # "Forget me" deletes one speaker's turns; without this it scans the guild's whole history.
    connection.execute(text("CREATE INDEX ix_turns_guild_speaker ON turns (guild_id, speaker_id)"))
    # The retention sweep purges across all guilds by age.
    connection.execute(text("CREATE INDEX ix_turns_created ON turns (created_at)"))
