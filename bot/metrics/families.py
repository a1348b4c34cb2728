"""The metric families Voxcord exports, in their own registry.

One ``Metrics`` per process, built by ``__main__`` and handed to whatever feeds it; nothing here
touches prometheus-client's global registry, so each test builds its own and reads only its own
numbers. No family carries a guild or user label: a bot in thousands of guilds would otherwise
export thousands of series per family, and per-guild detail is what ``/status`` and ``/usage``
are for.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Seconds from the end of someone's speech to each stage. The goal for first_packet_sent is about
# one second (README); the buckets are dense around it and reach the 20 s retry budget.
TURN_STAGE_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0)
# Event-loop lag: a healthy loop is late by well under a millisecond; 20 ms is one voice frame.
LOOP_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

# Usage kinds (bot/store/models.py UsageKind) → the family that counts them.
_TOKEN_DIRECTIONS = {"chat_input_tokens": "input", "chat_output_tokens": "output"}


class Metrics:
    """Every family, registered in ``registry`` (a fresh one unless given)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.turn_stage_seconds = Histogram(
            "voxcord_turn_stage_seconds",
            "Seconds from the end of the speaker's speech to each stage of the turn.",
            ["stage"], buckets=TURN_STAGE_BUCKETS, registry=r,
        )
        self.turns = Counter("voxcord_turns", "Finished turns, by outcome.", ["outcome"], registry=r)
        self.preemptive_starts = Counter(
            "voxcord_preemptive_starts",
            "Replies started before their turn's end was confirmed: used (heard) or wasted (withdrawn unheard).",
            ["outcome"], registry=r,
        )
        self.preemptive_wasted_cost_usd = Counter(
            "voxcord_preemptive_wasted_cost_usd",
            "Estimated USD spent on preemptive replies withdrawn unheard (chat tokens and speech, as metered).",
            registry=r,
        )
        self.stt_audio_seconds = Counter(
            "voxcord_stt_audio_seconds", "Seconds of speech sent for transcription.", registry=r
        )
        self.tts_characters = Counter("voxcord_tts_characters", "Characters synthesised to speech.", registry=r)
        self.chat_tokens = Counter("voxcord_chat_tokens", "Chat model tokens, by direction.", ["direction"], registry=r)
        self.cost_usd = Counter(
            "voxcord_estimated_cost_usd", "Estimated spend in USD at the configured prices, by usage kind.",
            ["kind"], registry=r,
        )
        self.mistral_errors = Counter(
            "voxcord_mistral_errors", "Failed Mistral attempts (each try that failed), by operation and kind.",
            ["operation", "kind"], registry=r,
        )
        self.mistral_retries = Counter(
            "voxcord_mistral_retries", "Mistral attempts retried after a failure, by operation and kind.",
            ["operation", "kind"], registry=r,
        )
        self.voice_sessions = Gauge("voxcord_voice_sessions", "Voice channels the bot is in now.", registry=r)
        self.voice_sessions_started = Counter(
            "voxcord_voice_sessions_started", "Voice sessions started (joins).", registry=r
        )
        self.loop_lag_seconds = Histogram(
            "voxcord_event_loop_lag_seconds", "How late the event loop ran a timer (seconds).",
            buckets=LOOP_LAG_BUCKETS, registry=r,
        )
        # DAVE decrypt failures are read from the voice connections' own counters at scrape time
        # (bot/metrics/voice.py registers that collector).

    def count_usage(self, kind: str, quantity: float, cost_usd: float) -> None:
        """One metered quantity (the meter's ``record``): its own family and its estimated cost."""
        if kind == "stt_seconds":
            self.stt_audio_seconds.inc(quantity)
        elif kind == "tts_characters":
            self.tts_characters.inc(quantity)
        elif kind in _TOKEN_DIRECTIONS:
            self.chat_tokens.labels(_TOKEN_DIRECTIONS[kind]).inc(quantity)
        else:
            raise ValueError(f"unknown usage kind {kind!r}")
        self.cost_usd.labels(kind).inc(cost_usd)
