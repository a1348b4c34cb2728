"""Turn metrics from the conversation's events: outcomes, and each stage's latency."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.conversation import events
from bot.metrics.families import Metrics


class TurnMetrics:
    """A conversation subscriber (``ConversationEngine(subscribers=...)``) for every guild.

    ``voxcord_turns_total{outcome}``: a reply's outcome (spoken, interrupted, failed) when it
    finishes, or the reason no reply came (events.RejectReason). Stage latencies are seconds from
    the end of the speaker's speech, as ``/status`` shows them, observed once the turn is over.
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def attach(self, _guild: object, bus: events.EventBus) -> Callable[[], Awaitable[None]]:
        undo = [
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
