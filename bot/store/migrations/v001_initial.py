"""V1: guild settings, conversation turns, voice clips, usage records."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
)
from sqlalchemy.engine import Connection

from bot.store.types import AutoId


def upgrade(connection: Connection) -> None:
    metadata = MetaData()
    # Allowed values for mode columns are checked in Python, not with CHECK constraints:
    # SQLite cannot alter a constraint without rebuilding the table, and new modes will come.
    Table(
        "guild_settings",
        metadata,
        Column("guild_id", BigInteger, primary_key=True, autoincrement=False),
        Column("persona", Text, nullable=True),
        Column("addressing_mode", Text, nullable=False),
        Column("wake_word", Text, nullable=True),
        Column("text_channel_id", BigInteger, nullable=True),
        Column("show_partial_transcripts", Boolean, nullable=False),
        Column("retention_days", Integer, nullable=False),
        Column("consent_mode", Text, nullable=False),
        Column("monthly_budget_usd", Double, nullable=True),
        Column("turn_rate_per_minute", Integer, nullable=True),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )
    turns = Table(
        "turns",
        metadata,
        Column("id", AutoId, primary_key=True, autoincrement=True),
        Column("guild_id", BigInteger, nullable=False),
        Column("speaker_id", BigInteger, nullable=True),
        Column("speaker_name", Text, nullable=False),
        Column("role", Text, nullable=False),
        Column("text", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("interrupted", Boolean, nullable=False),
    )
    # recent(): newest turns of one guild, walked backwards.
    Index("ix_turns_guild_created", turns.c.guild_id, turns.c.created_at, turns.c.id)
    Table(
        "voice_clips",
        metadata,
        Column("guild_id", BigInteger, primary_key=True, autoincrement=False),
        Column("audio", LargeBinary, nullable=False),
        Column("sample_rate", Integer, nullable=False),
        Column("duration_s", Double, nullable=False),
        Column("sha256", Text, nullable=False),
        Column("source_format", Text, nullable=False),
        Column("set_by_id", BigInteger, nullable=False),
        Column("set_by_name", Text, nullable=False),
        Column("set_at", DateTime(timezone=True), nullable=False),
    )
    usage = Table(
        "usage_records",
        metadata,
        Column("id", AutoId, primary_key=True, autoincrement=True),
        Column("guild_id", BigInteger, nullable=False),
        Column("user_id", BigInteger, nullable=True),
        Column("kind", Text, nullable=False),
        Column("quantity", Double, nullable=False),
        Column("cost_usd", Double, nullable=False),
        Column("recorded_at", DateTime(timezone=True), nullable=False),
    )
    # summary()/total_cost(): one guild's records since a date (the budget check runs per turn).
    Index("ix_usage_guild_recorded", usage.c.guild_id, usage.c.recorded_at)
    metadata.create_all(connection, checkfirst=False)
