"""The schema as of the latest migration, for building queries.

This module never creates anything; ``bot.store.migrations`` does. A test reflects a migrated
database and checks that every table and column here exists there.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
)

from bot.store.types import AutoId, UTCDateTime

metadata = MetaData()

guild_settings = Table(
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
    Column("updated_at", UTCDateTime, nullable=False),
    # v3; NULL means the operator's RATE_* default.
    Column("member_turn_rate_per_minute", Integer, nullable=True),
    Column("member_command_rate_per_minute", Integer, nullable=True),
    Column("command_rate_per_minute", Integer, nullable=True),
    # v4; NULL means captions are off.
    Column("captions_channel_id", BigInteger, nullable=True),
    # v5; NULL: detect the language, no vocabulary, no bot heard.
    Column("language", Text, nullable=True),
    Column("vocabulary", Text, nullable=True),
    Column("heard_bots", Text, nullable=True),
    # v7; NULL means auto-join is off.
    Column("autojoin_channel_id", BigInteger, nullable=True),
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
    Column("created_at", UTCDateTime, nullable=False),
    Column("interrupted", Boolean, nullable=False),
)

voice_clips = Table(
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
    Column("set_at", UTCDateTime, nullable=False),
    Column("voice_id", Text, nullable=True),
    Column("reference", LargeBinary, nullable=True),
)

usage_records = Table(
    "usage_records",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("guild_id", BigInteger, nullable=False),
    Column("user_id", BigInteger, nullable=True),
    Column("kind", Text, nullable=False),
    Column("quantity", Double, nullable=False),
    Column("cost_usd", Double, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
)

member_privacy = Table(
    "member_privacy",
    metadata,
    Column("guild_id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("opted_in", Boolean, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# v8: caption messages posted, and whose each line is (a span of the content, never the text).
caption_messages = Table(
    "caption_messages",
    metadata,
    Column("message_id", BigInteger, primary_key=True, autoincrement=False),
    Column("guild_id", BigInteger, nullable=False),
    Column("channel_id", BigInteger, nullable=False),
    Column("posted_at", UTCDateTime, nullable=False),
    Column("length", Integer, nullable=False),
)

caption_lines = Table(
    "caption_lines",
    metadata,
    Column("message_id", BigInteger, primary_key=True, autoincrement=False),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, nullable=True),
    Column("span_start", Integer, nullable=False),
    Column("span_end", Integer, nullable=False),
    Column("forgotten", Boolean, nullable=False),
)
