"""What each metered quantity costs, in USD. Defaults are Mistral's published prices.

Sources: batch transcription $0.003/min; realtime transcription $0.008/min, the price of
``voxtral-mini-transcribe-realtime-3-0`` (Voxtral 3, the default STT_MODEL; Mistral's model page,
checked 2026-12-01). The older ``voxtral-mini-transcribe-realtime-2602`` was $0.006/min: an
operator who switches STT_MODEL back sets PRICE_STT_REALTIME_USD_PER_MINUTE=0.006. TTS $16 per
million characters, mistral-small $0.10 / $0.30 per million input / output tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config import Settings

KIND_LABELS: dict[str, str] = {
    "stt_seconds": "speech transcribed",
    "chat_input_tokens": "chat input tokens",
    "chat_output_tokens": "chat output tokens",
    "tts_characters": "speech synthesised (characters)",
}


@dataclass(frozen=True, slots=True)
class PriceTable:
    # The bot streams every utterance to the realtime model; the rare batch fallback is
    # charged at the same (higher) rate, so the estimate errs on the side of spending less.
    stt_usd_per_minute: float = 0.008
    chat_input_usd_per_million: float = 0.10
    chat_output_usd_per_million: float = 0.30
    tts_usd_per_million_characters: float = 16.0

    @classmethod
    def from_settings(cls, settings: Settings) -> PriceTable:
        return cls(
            stt_usd_per_minute=settings.price_stt_realtime_usd_per_minute,
            chat_input_usd_per_million=settings.price_chat_input_usd_per_million_tokens,
            chat_output_usd_per_million=settings.price_chat_output_usd_per_million_tokens,
            tts_usd_per_million_characters=settings.price_tts_usd_per_million_characters,
        )

    def cost(self, kind: str, quantity: float) -> float:
        """USD for ``quantity`` units of ``kind``; an unknown kind is a bug and raises."""
        match kind:
            case "stt_seconds":
                return quantity / 60.0 * self.stt_usd_per_minute
            case "chat_input_tokens":
                return quantity / 1e6 * self.chat_input_usd_per_million
            case "chat_output_tokens":
                return quantity / 1e6 * self.chat_output_usd_per_million
            case "tts_characters":
                return quantity / 1e6 * self.tts_usd_per_million_characters
        raise ValueError(f"unknown usage kind {kind!r}")


DEFAULT_PRICES = PriceTable()
