"""Settings: one pydantic-settings class read from the environment and ``.env``.

Secrets are ``SecretStr`` so they never show in a repr, a log line or a validation message.
Nothing here runs at import time: ``__main__`` builds ``Settings()`` and reports problems.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.sharding import parse_shard_ids

# Each setting's hint is shown when its value is missing or malformed.
HINTS: dict[str, str] = {
    "discord_token": "the bot token from the Discord developer portal (Bot tab).",
    "mistral_api_key": "a Mistral API key from console.mistral.ai.",
    "database_url": "e.g. sqlite:///data/voxcord.db or postgresql://user@host/db.",
    "dev_guild_id": "a guild (server) id: a number.",
    "mistral_server_url": "a base URL without /v1, e.g. https://api.mistral.ai.",
    "discord_api_base_url": "e.g. https://discord.com/api/v10.",
    "discord_gateway_url": "e.g. wss://gateway.discord.gg/.",
    "log_level": "one of DEBUG, INFO, WARNING, ERROR.",
    "voice_decode": "48k (decode 48 kHz stereo, then resample) or 16k (decode straight to 16 kHz mono).",
    "redis_url": "e.g. redis://localhost:6379/0 (rediss:// for TLS), or leave it unset for one process.",
    "shard_count": "the total number of shards, the same in every process (e.g. 4).",
    "shard_ids": "this process's shards: ids or ranges below SHARD_COUNT, e.g. 0,1 or 2-3.",
    "metrics_port": "a TCP port for /metrics and /healthz, e.g. 9464, or leave it unset to turn them off.",
    "tts_voices_by_language": "language:voice pairs, e.g. en:voice_478,fr:voice_592.",
    "metrics_host": "the address to serve metrics on, e.g. 127.0.0.1 or 0.0.0.0 in a container.",
}


def _is_http_url(value: str) -> bool:
    return value.startswith(("http://", "https://")) and len(value.split("://", 1)[1]) > 0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    discord_token: SecretStr
    mistral_api_key: SecretStr
    database_url: str = "sqlite:///data/voxcord.db"
    dev_guild_id: int | None = None

    stt_model: str = "voxtral-mini-transcribe-realtime-3-0"
    stt_batch_model: str = "voxtral-mini-latest"
    # Server end-of-turn detection: auto = on Voxtral 3 realtime models, on = assume the model
    # has it (self-hosted), off = never ask (the bot's own end-of-turn decides).
    stt_turn_detection: Literal["auto", "on", "off"] = "auto"
    # Voice activity: silero = energy gate + Silero VAD v5 (music and noise do not open turns),
    # spectral = numpy only (less CPU; chords and melodies pass for speech). docs/decisions.md.
    vad: Literal["silero", "spectral"] = "silero"
    chat_model: str = "mistral-small-latest"
    # Voxtral TTS 3 (Mistral's migration page maps voxtral-mini-tts-2603 to it); 2603 still works.
    tts_model: str = "voxtral-mini-tts-3-0"
    tts_default_voice: str | None = None
    # The preset voice for a reply's language when the server set no clip (Voxtral 3 presets,
    # docs.mistral.ai voice library); a language not listed gets TTS_DEFAULT_VOICE.
    tts_voices_by_language: Annotated[dict[str, str], NoDecode] = {
        "en": "voice_478", "fr": "voice_592", "es": "voice_483", "de": "voice_481",
        "it": "voice_482", "pt": "voice_480", "ar": "voice_479",
    }
    # Register a server's clip as a Mistral custom voice (spoken by id, deleted with the clip);
    # off, or refused by the plan, the clip's compact reference rides with each request instead.
    tts_register_voices: bool = True
    # How speech comes from the TTS: opus = Ogg Opus, whose 20 ms packets FFmpeg copies to
    # Discord (no encoder; ~10x fewer bytes than pcm); pcm = float32 that FFmpeg encodes. A
    # server that refuses opus (HTTP 400/422) gets pcm from then on (docs/decisions.md, Playback).
    tts_format: Literal["opus", "pcm"] = "pcm"

    mistral_server_url: str | None = None
    discord_api_base_url: str = "https://discord.com/api/v10"
    discord_gateway_url: str = "wss://gateway.discord.gg/"

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # How received Opus becomes 16 kHz mono: 48k = decode 48 kHz stereo, downmix, soxr (the
    # reference path); 16k = libopus decodes straight to 16 kHz mono (equal for recognition,
    # ~40-60 % less receive CPU: docs/decisions.md).
    voice_decode: Literal["48k", "16k"] = "48k"
    # How much lower each reply's FFmpeg encoder runs than the bot (nice increment, 0-19): under
    # a full CPU the event loop, which every guild's turn waits on, goes first. Off by default:
    # at 10 one reply in 10 had a 20 ms hole in the quick benchmark, and the 50-guild gain is
    # unproven (docs/decisions.md).
    ffmpeg_niceness: Annotated[int, Field(ge=0, le=19)] = 0

    # Reference clips for /voice set: refused past these, before anything is decoded.
    clip_max_bytes: Annotated[int, Field(gt=0)] = 10 * 1024 * 1024
    clip_max_input_seconds: Annotated[float, Field(gt=0)] = 60.0

    # How long to wait on Mistral before a retry, and how far the retries may go. A stalled
    # service costs the user at most about attempts x timeout before the bot apologises.
    chat_first_token_timeout: Annotated[float, Field(gt=0)] = 15.0
    tts_first_audio_timeout: Annotated[float, Field(gt=0)] = 10.0
    stt_final_timeout: Annotated[float, Field(gt=0)] = 5.0
    retry_max_attempts: Annotated[int, Field(ge=1, le=10)] = 4
    retry_max_total_seconds: Annotated[float, Field(gt=0)] = 20.0
    # Leave voice once no human has been in the channel this long (bot/services/presence.py).
    idle_leave_seconds: Annotated[float, Field(gt=0)] = 60.0

    # Prices (USD) for usage accounting and budgets; defaults are Mistral's published prices.
    price_stt_realtime_usd_per_minute: Annotated[float, Field(ge=0)] = 0.008
    price_chat_input_usd_per_million_tokens: Annotated[float, Field(ge=0)] = 0.10
    price_chat_output_usd_per_million_tokens: Annotated[float, Field(ge=0)] = 0.30
    price_tts_usd_per_million_characters: Annotated[float, Field(ge=0)] = 16.0

    # Token buckets (a minute's worth may come at once). A guild's own turn rate, set with
    # /usage turn-rate, replaces RATE_GUILD_TURNS_PER_MINUTE for that guild.
    rate_user_turns_per_minute: Annotated[float, Field(gt=0)] = 8.0
    rate_guild_turns_per_minute: Annotated[float, Field(gt=0)] = 30.0
    rate_user_commands_per_minute: Annotated[float, Field(gt=0)] = 12.0
    rate_guild_commands_per_minute: Annotated[float, Field(gt=0)] = 60.0

    # Past one process (docs/scaling.md): Redis shares rate limits and budgets between
    # processes; each process runs the shard group SHARD_IDS of SHARD_COUNT shards.
    redis_url: str | None = None
    shard_count: Annotated[int, Field(gt=0)] | None = None
    # NoDecode: "0,1" or "2-3" as written, not JSON (pydantic-settings JSON-decodes list env vars).
    shard_ids: Annotated[tuple[int, ...] | None, NoDecode] = None

    # Prometheus /metrics and /healthz (bot/metrics/server.py): off unless a port is set; 0 picks
    # a free port (tests). Loopback by default: an operator decides who may read them.
    metrics_port: Annotated[int, Field(ge=0, le=65535)] | None = None
    metrics_host: str = "127.0.0.1"

    @property
    def sole_process(self) -> bool:
        """Whether this process is the only one using the database (no shard groups, no Redis)."""
        return self.redis_url is None and self.shard_count is None

    @field_validator("discord_token", "mistral_api_key")
    @classmethod
    def _not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("is empty")
        return value

    @field_validator("mistral_server_url")
    @classmethod
    def _base_url_without_v1(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not _is_http_url(value):
            raise ValueError("must start with http:// or https://")
        if value.endswith("/v1"):
            # The SDK appends /v1 itself; a doubled /v1/v1 would 404 on every call.
            raise ValueError("must not end with /v1 (the client adds it)")
        return value

    @field_validator("discord_api_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not _is_http_url(value):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("discord_gateway_url")
    @classmethod
    def _ws_url(cls, value: str) -> str:
        value = value.strip()
        if not value.startswith(("ws://", "wss://")):
            raise ValueError("must start with wss:// (or ws://)")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str) -> str:
        scheme = value.split(":", 1)[0].split("+", 1)[0].lower()
        if scheme not in {"sqlite", "postgresql", "postgres"}:
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value

    @field_validator("redis_url", "shard_count", "shard_ids", "metrics_port", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("metrics_host")
    @classmethod
    def _host(cls, value: str) -> str:
        value = value.strip()
        if not value or "/" in value or " " in value:
            raise ValueError("must be a host name or IP address, e.g. 127.0.0.1")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.strip().lower().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value.strip() if value is not None else None

    @field_validator("tts_voices_by_language", mode="before")
    @classmethod
    def _voice_table(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        table: dict[str, str] = {}
        for raw in value.split(","):
            if not raw.strip():
                continue
            language, colon, voice = (part.strip() for part in raw.partition(":"))
            if not colon or not language or not voice:
                raise ValueError(f"{raw.strip()!r} is not language:voice")
            table[language.lower()] = voice
        return table

    @field_validator("shard_ids", mode="before")
    @classmethod
    def _shard_id_list(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_shard_ids(value) if value.strip() else None
        return value

    @field_validator("shard_ids")
    @classmethod
    def _shard_ids_within_count(cls, value: tuple[int, ...] | None, info: ValidationInfo) -> tuple[int, ...] | None:
        if value is None:
            return None
        if "shard_count" not in info.data:
            return value  # SHARD_COUNT itself is invalid and reported on its own
        count = info.data["shard_count"]
        if count is None:
            raise ValueError("needs SHARD_COUNT (the total number of shards) as well")
        if min(value) < 0 or max(value) >= count:
            raise ValueError(f"must be between 0 and SHARD_COUNT - 1 ({count - 1})")
        return tuple(sorted(set(value)))


def describe_settings_error(error: ValidationError) -> str:
    """One readable message naming every bad variable, never echoing a value."""
    lines = ["Voxcord cannot start: fix these settings (environment or .env):"]
    for problem in error.errors(include_input=False, include_url=False):
        field = str(problem["loc"][0]) if problem["loc"] else "?"
        variable = field.upper()
        what = "is not set" if problem["type"] == "missing" else problem["msg"].removeprefix("Value error, ")
        hint = HINTS.get(field, "")
        lines.append(f"  - {variable} {what}." + (f" Set it to {hint}" if hint else ""))
    lines.append("See .env.example for every setting.")
    return "\n".join(lines)
