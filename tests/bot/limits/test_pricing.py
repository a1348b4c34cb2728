"""The default price table is Mistral's published prices; settings override each price."""

from __future__ import annotations

import pytest

from bot.config import Settings
from bot.limits import DEFAULT_PRICES, PriceTable


def test_defaults_match_the_published_prices() -> None:
    assert DEFAULT_PRICES.cost("stt_seconds", 60) == pytest.approx(0.008)  # Voxtral 3 realtime, $/min
    assert DEFAULT_PRICES.cost("chat_input_tokens", 1_000_000) == pytest.approx(0.10)
    assert DEFAULT_PRICES.cost("chat_output_tokens", 1_000_000) == pytest.approx(0.30)
    assert DEFAULT_PRICES.cost("tts_characters", 1_000_000) == pytest.approx(16.0)


def test_settings_defaults_build_the_default_table() -> None:
    settings = Settings(_env_file=None, discord_token="t" * 10, mistral_api_key="k" * 10)
    assert PriceTable.from_settings(settings) == DEFAULT_PRICES


def test_each_price_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRICE_STT_REALTIME_USD_PER_MINUTE", "0.003")
    monkeypatch.setenv("PRICE_TTS_USD_PER_MILLION_CHARACTERS", "20")
    settings = Settings(_env_file=None, discord_token="t" * 10, mistral_api_key="k" * 10)
    table = PriceTable.from_settings(settings)
    assert table.cost("stt_seconds", 120) == pytest.approx(0.006)
    assert table.cost("tts_characters", 500_000) == pytest.approx(10.0)


def test_negative_price_is_refused() -> None:
    with pytest.raises(ValueError, match="price_chat_input"):
        Settings(_env_file=None, discord_token="t" * 10, mistral_api_key="k" * 10,
                 price_chat_input_usd_per_million_tokens=-1)


def test_unknown_kind_raises() -> None:
    with pytest.raises(ValueError, match="unknown usage kind"):
        DEFAULT_PRICES.cost("gpu_hours", 1)
