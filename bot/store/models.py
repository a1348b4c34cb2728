"""What the store hands out: frozen value objects, no database handles inside.

Timestamps are always timezone-aware. The store converts them to UTC on the way in, so a
naive datetime is a bug in the caller (it would be read back as UTC and silently shift by
the host's offset); the constructors refuse it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal, get_args

AddressingMode = Literal["auto", "always", "wake_word"]
ConsentMode = Literal["opt_out", "opt_in"]
Role = Literal["user", "assistant", "context"]
UsageKind = Literal["stt_seconds", "chat_input_tokens", "chat_output_tokens", "tts_characters"]

ADDRESSING_MODES: Final[frozenset[str]] = frozenset(get_args(AddressingMode))
CONSENT_MODES: Final[frozenset[str]] = frozenset(get_args(ConsentMode))
ROLES: Final[frozenset[str]] = frozenset(get_args(Role))
USAGE_KINDS: Final[frozenset[str]] = frozenset(get_args(UsageKind))

DEFAULT_RETENTION_DAYS: Final = 30


def utc_now() -> datetime:
    return datetime.now(UTC)


def require_aware(value: datetime | None, field: str) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{field} must be a timezone-aware datetime, got a naive one")


def _require_member(value: str, allowed: frozenset[str], field: str) -> None:
    if value not in allowed:
        raise ValueError(f"{field} must be one of {sorted(allowed)}, got {value!r}")


@dataclass(frozen=True, slots=True)
class GuildSettings:
    guild_id: int
    persona: str | None = None
    addressing_mode: AddressingMode = "auto"
    wake_word: str | None = None
    text_channel_id: int | None = None
    show_partial_transcripts: bool = False
    retention_days: int = DEFAULT_RETENTION_DAYS
    consent_mode: ConsentMode = "opt_out"
    monthly_budget_usd: float | None = None
    turn_rate_per_minute: int | None = None
    # The guild's own rates; None means the operator's default (RATE_* settings).
    member_turn_rate_per_minute: int | None = None
    member_command_rate_per_minute: int | None = None
    command_rate_per_minute: int | None = None
    # Where each finished turn is captioned as text (a channel or thread); None: captions off.
    captions_channel_id: int | None = None
    # v5, issue 12: the language spoken here (None: detect it), terms to bias recognition toward
    # (comma separated), and bot users whose audio is heard (comma-separated ids; None: no bots).
    language: str | None = None
    vocabulary: str | None = None
    heard_bots: str | None = None
    # The voice channel the bot joins by itself when a member enters it; None: auto-join off.
    autojoin_channel_id: int | None = None
    # None means "never saved": the defaults above are in force.
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        _require_member(self.addressing_mode, ADDRESSING_MODES, "addressing_mode")
        _require_member(self.consent_mode, CONSENT_MODES, "consent_mode")
        require_aware(self.updated_at, "updated_at")


@dataclass(frozen=True, slots=True)
class Turn:
    id: int | None
    guild_id: int
    speaker_id: int | None
    speaker_name: str
    role: Role
    text: str
    created_at: datetime
    interrupted: bool = False

    def __post_init__(self) -> None:
        _require_member(self.role, ROLES, "role")
        require_aware(self.created_at, "created_at")


@dataclass(frozen=True, slots=True)
class VoiceClip:
    guild_id: int
    audio: bytes
    sample_rate: int
    duration_s: float
    sha256: str
    source_format: str
    set_by_id: int
    set_by_name: str
    set_at: datetime
    # How speech requests carry this voice, decided once per clip (``bot.clip_voices``): a Mistral
    # custom voice id where the plan allows it, and the compact MP3 reference (best 15 s) sent
    # as ``ref_audio`` otherwise. Both None: not prepared yet.
    voice_id: str | None = None
    reference: bytes | None = None

    def __post_init__(self) -> None:
        require_aware(self.set_at, "set_at")

    @property
    def prepared(self) -> bool:
        return self.voice_id is not None or self.reference is not None

    def speech_voice(self) -> tuple[bytes | None, str | None]:
        """``(ref_audio, voice_id)`` for a speech request: the registered voice, else the compact
        reference, else (not prepared yet) the clip itself."""
        if self.voice_id is not None:
            return None, self.voice_id
        return (self.reference if self.reference is not None else self.audio), None

    def __repr__(self) -> str:
        # The default repr would dump up to megabytes of WAV into logs and tracebacks.
        reference = "None" if self.reference is None else f"<{len(self.reference)} bytes>"
        return (
            f"VoiceClip(guild_id={self.guild_id}, audio=<{len(self.audio)} bytes>, "
            f"sample_rate={self.sample_rate}, duration_s={self.duration_s}, sha256={self.sha256!r}, "
            f"source_format={self.source_format!r}, set_by_id={self.set_by_id}, "
            f"set_by_name={self.set_by_name!r}, set_at={self.set_at!r}, voice_id={self.voice_id!r}, "
            f"reference={reference})"
        )


@dataclass(frozen=True, slots=True)
class UsageRecord:
    guild_id: int
    user_id: int | None
    kind: UsageKind
    quantity: float
    cost_usd: float
    at: datetime

    def __post_init__(self) -> None:
        _require_member(self.kind, USAGE_KINDS, "kind")
        require_aware(self.at, "at")


@dataclass(frozen=True, slots=True)
class CaptionLine:
    """One line of a caption message: ``content[start:end]``, and whose it is (the speaker, or the
    member a reply answered; None: nobody's). ``forgotten``: to be cut out (forget-me)."""

    user_id: int | None
    start: int
    end: int
    forgotten: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ValueError(f"a caption line spans start <= end, got {self.start}..{self.end}")


@dataclass(frozen=True, slots=True)
class CaptionMessage:
    """A caption message the bot posted: where, when, its content's length and its lines, in order."""

    guild_id: int
    channel_id: int
    message_id: int
    posted_at: datetime
    length: int
    lines: tuple[CaptionLine, ...]

    def __post_init__(self) -> None:
        require_aware(self.posted_at, "posted_at")
