"""Settings: one pydantic-settings class read from the environment and ``.env``.

Secrets are ``SecretStr`` so they never show in a repr, a log line or a validation message.
Nothing here runs at import time: ``__main__`` builds ``Settings()`` and reports problems.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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

    stt_model: str = "voxtral-mini-transcribe-realtime-2602"
    stt_batch_model: str = "voxtral-mini-latest"
    chat_model: str = "mistral-small-latest"
    tts_model: str = "voxtral-mini-tts-2603"
    tts_default_voice: str | None = None

    mistral_server_url: str | None = None
    discord_api_base_url: str = "https://discord.com/api/v10"
    discord_gateway_url: str = "wss://gateway.discord.gg/"

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Reference clips for /voice set: refused past these, before anything is decoded.
    clip_max_bytes: Annotated[int, Field(gt=0)] = 10 * 1024 * 1024
    clip_max_input_seconds: Annotated[float, Field(gt=0)] = 60.0

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
