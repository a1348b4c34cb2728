"""Subscribers that keep the record of a conversation: timings, usage and the stored turns.

None of them delays a reply: each reacts to an event by noting it or by starting a write in the
guild's ``Background``, which answering drains at the end of each turn and ``stop`` drains at the
end, so a turn's rows and usage are stored before the next turn starts or the bot exits.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from bot.conversation import events
from bot.conversation.context import ConversationStore
from bot.conversation.ports import TurnMeter
from bot.conversation.timings import TimingsLog
from bot.conversation.turn import Background
from bot.store import Turn
from bot.store.models import Role

log = logging.getLogger(__name__)


def record_timings(bus: events.EventBus, timings: TimingsLog) -> events.Unsubscribe:
    """Every finished turn's stage timings, for /status."""
    def on_finished(event: events.ReplyFinished) -> None:
        if event.outcome != "withdrawn":  # never heard: no turn to time
            timings.add(event.timings)

    return bus.subscribe(events.ReplyFinished, on_finished)


def record_usage(bus: events.EventBus, meter: TurnMeter, background: Background) -> events.Unsubscribe:
    """Billable use goes to the meter (budgets and /usage)."""

    def on_usage(event: events.UsageIncurred) -> None:
        background.spawn(meter.record(event.guild_id, event.user_id, event.kind, event.quantity))

    return bus.subscribe(events.UsageIncurred, on_usage)


class TurnJournal:
    """Stores the conversation's turns in the order they happened: overheard remarks (and
    backchannels) as context, each answered question once its reply is requested (a provisional
    one, prepared on the server's eager end, once the server confirms the turn), and what was
    heard of each reply.

    Until its first audio a reply may be withdrawn (the member was not done: their next words join
    the question); a withdrawn question's row is deleted, so history keeps the whole question once."""

    def __init__(
        self, store: ConversationStore, background: Background, *, guild_id: int, bot_name: str,
        wall_clock: Callable[[], dt.datetime],
    ) -> None:
        self._store = store
        self._background = background
        self._guild_id = guild_id
        self._bot_name = bot_name
        self._wall_clock = wall_clock
        self._last: asyncio.Future[Any] | None = None  # the previous write: rows commit in order
        self._questions: dict[int, asyncio.Future[Any]] = {}
        self._asked: dict[int, events.ReplyStarted] = {}  # questions not written yet

    def attach(self, bus: events.EventBus) -> None:
        bus.subscribe(events.TurnRejected, self._on_rejected)
        bus.subscribe(events.ReplyStarted, self._on_reply_started)
        bus.subscribe(events.TurnConfirmed, self._on_confirmed)
        bus.subscribe(events.ReplyFinished, self._on_reply_finished)

    async def question_saved(self, turn_id: int) -> None:
        """Wait until the question's row is committed (or its write failed and was logged). The
        reply is heard only once this returns (its speech is requested and encoded meanwhile). A
        provisional question is written only once confirmed (never, if withdrawn): asked before
        that, this returns at once, so ask it after the confirmation."""
        asked = self._asked.get(turn_id)
        if asked is not None and asked.provisional:
            return
        saved = self._write_question(turn_id)
        if saved is not None:
            await asyncio.shield(saved)

    def _on_rejected(self, event: events.TurnRejected) -> None:
        if event.reason in ("not_addressed", "backchannel"):
            self._write(event.user_id, event.speaker_name, "context", event.text)

    def _on_confirmed(self, event: events.TurnConfirmed) -> None:
        self._write_question(event.turn_id)

    def _on_reply_started(self, event: events.ReplyStarted) -> None:
        self._asked[event.turn_id] = event
        if not event.provisional:
            self._write_question(event.turn_id)  # while the model thinks

    def _write_question(self, turn_id: int) -> asyncio.Future[Any] | None:
        asked = self._asked.pop(turn_id, None)
        if asked is not None:
            self._questions[turn_id] = self._write(asked.user_id, asked.speaker_name, "user", asked.text)
        return self._questions.get(turn_id)

    def _on_reply_finished(self, event: events.ReplyFinished) -> None:
        if event.outcome == "withdrawn":
            self._asked.pop(event.turn_id, None)
            written = self._questions.pop(event.turn_id, None)
            if written is not None:
                self._last = self._background.spawn(self._unwrite(self._last, written))
            return
        self._write_question(event.turn_id)  # a reply that failed before its first sentence
        self._questions.pop(event.turn_id, None)
        if event.text and event.outcome != "failed":
            self._write(None, self._bot_name, "assistant", event.text, interrupted=event.outcome == "interrupted")

    def _write(
        self, user_id: int | None, name: str, role: Role, text: str, *, interrupted: bool = False
    ) -> asyncio.Future[Any]:
        turn = Turn(id=None, guild_id=self._guild_id, speaker_id=user_id, speaker_name=name, role=role,
                    text=text, created_at=self._wall_clock(), interrupted=interrupted)
        self._last = self._background.spawn(self._after(self._last, turn))
        return self._last

    async def _after(self, previous: asyncio.Future[Any] | None, turn: Turn) -> Turn | None:
        if previous is not None:
            await asyncio.wait({previous})
        try:
            return await self._store.add_turn(turn)
        except Exception:
            # The reply was (being) spoken regardless; losing a row is logged loudly.
            log.exception("Guild %s: could not store a %s turn", self._guild_id, turn.role)
            return None

    async def _unwrite(self, previous: asyncio.Future[Any] | None, written: asyncio.Future[Any]) -> None:
        if previous is not None:
            await asyncio.wait({previous})
        stored = written.result() if not written.cancelled() else None
        if stored is not None and stored.id is not None:
            try:
                await self._store.remove_turn(stored.id)
            except Exception:
                log.exception("Guild %s: could not remove a withdrawn question", self._guild_id)
