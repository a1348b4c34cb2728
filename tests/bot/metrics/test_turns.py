"""TurnMetrics: turn outcomes, and preemptive replies used or wasted (with what the wasted cost)."""

from __future__ import annotations

import time

import pytest

from bot.conversation import events
from bot.conversation.timings import TurnTimings
from bot.limits.pricing import PriceTable
from bot.metrics import Metrics
from bot.metrics.turns import TurnMetrics

GUILD = 5
PRICES = PriceTable(stt_usd_per_minute=0.6, chat_input_usd_per_million=1.0, chat_output_usd_per_million=3.0,
                    tts_usd_per_million_characters=16.0)


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def reply(bus: events.EventBus, turn_id: int, outcome: events.ReplyOutcome, *, provisional: bool,
          tts_characters: int = 0, output_tokens: int = 0) -> None:
    bus.publish(events.ReplyStarted(guild_id=GUILD, at=1.0, turn_id=turn_id, user_id=7, speaker_name="m",
                                    text="q", provisional=provisional))
    bus.publish(events.UsageIncurred(guild_id=GUILD, at=1.1, user_id=7, kind="stt_seconds", quantity=60))
    if output_tokens:
        bus.publish(events.UsageIncurred(guild_id=GUILD, at=1.2, user_id=7, kind="chat_input_tokens",
                                         quantity=1_000_000))
        bus.publish(events.UsageIncurred(guild_id=GUILD, at=1.2, user_id=7, kind="chat_output_tokens",
                                         quantity=output_tokens))
    if tts_characters:
        bus.publish(events.UsageIncurred(guild_id=GUILD, at=1.3, user_id=None, kind="tts_characters",
                                         quantity=tts_characters))
    bus.publish(events.ReplyFinished(guild_id=GUILD, at=2.0, turn_id=turn_id, user_id=7, speaker_name="m",
                                     question="q", text="", outcome=outcome,
                                     timings=TurnTimings(clock=time.monotonic)))


async def test_preemptive_replies_are_counted_used_or_wasted_with_the_wasted_cost() -> None:
    metrics, bus = Metrics(), events.EventBus()
    detach = TurnMetrics(metrics, PRICES).attach(None, bus)
    reply(bus, 1, "withdrawn", provisional=True, output_tokens=1_000_000, tts_characters=1_000_000)
    reply(bus, 2, "spoken", provisional=True, output_tokens=1_000_000, tts_characters=1_000_000)
    reply(bus, 3, "withdrawn", provisional=False, output_tokens=1_000_000)  # never a preemptive start
    reply(bus, 4, "spoken", provisional=False)
    await detach()
    assert value(metrics, "voxcord_preemptive_starts_total", outcome="wasted") == 1
    assert value(metrics, "voxcord_preemptive_starts_total", outcome="used") == 1
    # Turn 1's chat (1 + 3 USD) and speech (16 USD); not the STT (listening's) nor the other turns'.
    assert value(metrics, "voxcord_preemptive_wasted_cost_usd_total") == pytest.approx(20.0)
    assert value(metrics, "voxcord_turns_total", outcome="withdrawn") == 2
    assert value(metrics, "voxcord_turns_total", outcome="spoken") == 2
