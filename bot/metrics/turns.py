"""Turn metrics from the conversation's events: outcomes, and each stage's latency."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.conversation import events
from bot.limits.pricing import PriceTable
from bot.metrics.families import Metrics

_REPLY_USAGE = frozenset({"chat_input_tokens", "chat_output_tokens", "tts_characters"})


class TurnMetrics:
    """A conversation subscriber (``ConversationEngine(subscribers=...)``) for every guild.

    ``voxcord_turns_total{outcome}``: a reply's outcome (spoken, interrupted, failed) when it
    finishes, or the reason no reply came (events.RejectReason). Stage latencies are seconds from
    the end of the speaker's speech, as ``/status`` shows them, observed once the turn is over.

    ``voxcord_preemptive_starts_total{outcome}``: replies started before their turn's end was
    confirmed (our early end, the server's eager end), ``used`` once confirmed or ``wasted`` when
    withdrawn unheard (the member went on); ``voxcord_preemptive_wasted_cost_usd_total`` is what
    the wasted ones cost as metered (chat tokens and speech characters, at ``prices``; a chat
    stream cancelled before its usage arrived reports no tokens, so it is a lower bound).
    """

    def __init__(self, metrics: Metrics, prices: PriceTable | None = None) -> None:
        self._metrics = metrics
        self._prices = prices

    def attach(self, _guild: object, bus: events.EventBus) -> Callable[[], Awaitable[None]]:
        # Answering runs one reply at a time: usage between a reply's start and its end is its own.
        current: dict[str, float] = {}  # "turn" (a provisional reply under way), "cost" so far

        def started(event: events.ReplyStarted) -> None:
            current.clear()
            if event.provisional:
                current.update(turn=event.turn_id, cost=0.0)

        def used(event: events.UsageIncurred) -> None:
            if current and event.kind in _REPLY_USAGE and self._prices is not None:
                current["cost"] += self._prices.cost(event.kind, event.quantity)

        def finished(event: events.ReplyFinished) -> None:
            if current.get("turn") == event.turn_id:
                wasted = event.outcome == "withdrawn"
                self._metrics.preemptive_starts.labels("wasted" if wasted else "used").inc()
                if wasted:
                    self._metrics.preemptive_wasted_cost_usd.inc(current["cost"])
                current.clear()

        undo = [
            bus.subscribe(events.ReplyStarted, started),
            bus.subscribe(events.UsageIncurred, used),
            bus.subscribe(events.ReplyFinished, finished),
            bus.subscribe(events.ReplyFinished, self._finished),
            bus.subscribe(events.TurnRejected, self._rejected),
        ]

        async def detach() -> None:
            for unsubscribe in undo:
                unsubscribe()

        return detach

    def _finished(self, event: events.ReplyFinished) -> None:
        self._metrics.turns.labels(event.outcome).inc()
        for stage, ms in event.timings.since_speech_end_ms().items():
            self._metrics.turn_stage_seconds.labels(stage).observe(ms / 1000)

    def _rejected(self, event: events.TurnRejected) -> None:
        self._metrics.turns.labels(event.reason).inc()
