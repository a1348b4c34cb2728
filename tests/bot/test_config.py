"""Settings: required secrets, readable errors that never echo a value, URL conventions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.config import Settings, describe_settings_error

ROOT = Path(__file__).resolve().parents[2]
ALL_VARS = (
    "DISCORD_TOKEN", "MISTRAL_API_KEY", "DATABASE_URL", "DEV_GUILD_ID", "MISTRAL_SERVER_URL",
    "DISCORD_API_BASE_URL", "DISCORD_GATEWAY_URL", "LOG_LEVEL",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ALL_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's checkout


def settings_error(**env: str) -> str:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})
    return describe_settings_error(caught.value)


def test_missing_secrets_are_named(clean_env: None) -> None:
    message = settings_error()
    assert "DISCORD_TOKEN is not set" in message
    assert "MISTRAL_API_KEY is not set" in message


def test_secret_values_never_appear_in_errors(clean_env: None) -> None:
    token = "tok-VERY-SECRET-123"
    message = settings_error(discord_token=token, mistral_api_key="   ", dev_guild_id="abc")
    assert token not in message
    assert "MISTRAL_API_KEY is empty" in message
    assert "DEV_GUILD_ID" in message
    assert "DISCORD_TOKEN" not in message


def test_repr_masks_secrets(clean_env: None) -> None:
    settings = Settings(_env_file=None, discord_token="tok-abcdef", mistral_api_key="key-abcdef")
    assert "tok-abcdef" not in repr(settings)
    assert "key-abcdef" not in repr(settings)
    assert settings.discord_token.get_secret_value() == "tok-abcdef"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://api.mistral.ai", "https://api.mistral.ai"),
        ("https://eu.proxy.example/", "https://eu.proxy.example"),
        ("", None),
    ],
)
def test_mistral_server_url_accepts_base_urls(clean_env: None, value: str, expected: str | None) -> None:
    settings = Settings(_env_file=None, discord_token="t" * 8, mistral_api_key="k" * 8, mistral_server_url=value)
    assert settings.mistral_server_url == expected


def test_mistral_server_url_with_v1_is_refused_with_a_reason(clean_env: None) -> None:
    message = settings_error(discord_token="t" * 8, mistral_api_key="k" * 8,
                             mistral_server_url="https://api.mistral.ai/v1")
    assert "MISTRAL_SERVER_URL must not end with /v1" in message


def test_database_url_scheme_is_checked(clean_env: None) -> None:
    message = settings_error(discord_token="t" * 8, mistral_api_key="k" * 8, database_url="mysql://x/y")
    assert "DATABASE_URL" in message


def test_env_file_is_read(clean_env: None, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DISCORD_TOKEN=from-dotenv\nMISTRAL_API_KEY=key-dotenv\nDEV_GUILD_ID=42\n")
    settings = Settings()
    assert settings.discord_token.get_secret_value() == "from-dotenv"
    assert settings.dev_guild_id == 42


def test_python_m_bot_with_empty_environment_exits_2_naming_both(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ALL_VARS}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "bot"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "DISCORD_TOKEN" in result.stderr
    assert "MISTRAL_API_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_setting_is_documented_in_the_readme_and_env_example() -> None:
    names = {name.upper() for name in Settings.model_fields}
    readme = (ROOT / "README.md").read_text()
    table = {line.split("`")[1] for line in readme.splitlines() if line.startswith("| `") and "`" in line[3:]}
    example = (ROOT / ".env.example").read_text()
    in_example = {line.lstrip("# ").split("=", 1)[0] for line in example.splitlines() if "=" in line}
    assert names - table == set(), "missing from the README's settings table"
    assert names - in_example == set(), "missing from .env.example"
