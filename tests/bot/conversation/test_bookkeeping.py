"""Bookkeeping subscribers: stored turns in the order they happened, usage to the meter, timings."""

from __future__ import annotations

import asyncio
import datetime as dt

from bot.conversation import events
from bot.conversation.bookkeeping import TurnJournal, record_timings, record_usage
from bot.conversation.timings import TimingsLog, TurnTimings
from bot.conversation.turn import Background
from bot.store import Turn

GUILD = 3
T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


class SlowStore:
    """Stands in for ConversationStore: each write takes the delay scripted for its text."""

    def __init__(self, delays: dict[str, float] | None = None) -> None:
        self.delays = delays or {}
        self.committed: list[Turn] = []

    async def add_turn(self, turn: Turn) -> Turn:
        await asyncio.sleep(self.delays.get(turn.text, 0.0))
        self.committed.append(turn)
        return turn


def journal(store: SlowStore, background: Background) -> events.EventBus:
    bus = events.EventBus()
    TurnJournal(store, background, guild_id=GUILD, bot_name="Voxcord", wall_clock=lambda: T0).attach(bus)  # type: ignore[arg-type]
    return bus


def finished(turn_id: int, text: str, outcome: events.ReplyOutcome) -> events.ReplyFinished:
    return events.ReplyFinished(guild_id=GUILD, at=0.0, turn_id=turn_id, user_id=7, speaker_name="bob",
                                question="q", text=text, outcome=outcome, timings=TurnTimings(clock=lambda: 0.0))


async def test_rows_commit_in_event_order_even_when_an_earlier_write_is_slow() -> None:
    store = SlowStore({"overheard": 0.05})
    background = Background()
    bus = journal(store, background)
    bus.publish(events.TurnRejected(guild_id=GUILD, at=0.0, user_id=8, speaker_name="ann", text="overheard",
                                    reason="not_addressed"))
    bus.publish(events.ReplyStarted(guild_id=GUILD, at=0.0, turn_id=1, user_id=7, speaker_name="bob", text="q"))
    bus.publish(finished(1, "An answer.", "spoken"))
    await background.drain()
    assert [(t.role, t.speaker_name, t.text, t.interrupted) for t in store.committed] == [
        ("context", "ann", "overheard", False), ("user", "bob", "q", False),
        ("assistant", "Voxcord", "An answer.", False)]


async def test_an_interrupted_reply_keeps_what_was_heard_and_a_failed_one_nothing() -> None:
    store = SlowStore()
    background = Background()
    bus = journal(store, background)
    bus.publish(events.ReplyStarted(guild_id=GUILD, at=0.0, turn_id=1, user_id=7, speaker_name="bob", text="q"))
    bus.publish(finished(1, "Half of it…", "interrupted"))
    bus.publish(events.ReplyStarted(guild_id=GUILD, at=0.0, turn_id=2, user_id=7, speaker_name="bob", text="q2"))
    bus.publish(finished(2, "Spoken before the failure.", "failed"))
    bus.publish(events.TurnRejected(guild_id=GUILD, at=0.0, user_id=7, speaker_name="bob", text="...",
                                    reason="no_words"))
    await background.drain()
    assert [(t.role, t.text, t.interrupted) for t in store.committed] == [
        ("user", "q", False), ("assistant", "Half of it…", True), ("user", "q2", False)]


async def test_the_first_sentence_can_wait_for_the_questions_commit() -> None:
    store = SlowStore({"q": 0.05})
    background = Background()
    bus = events.EventBus()
    turns = TurnJournal(store, background, guild_id=GUILD, bot_name="Voxcord", wall_clock=lambda: T0)  # type: ignore[arg-type]
    turns.attach(bus)
    bus.publish(events.ReplyStarted(guild_id=GUILD, at=0.0, turn_id=1, user_id=7, speaker_name="bob", text="q"))
    assert store.committed == []
    await turns.question_saved(1)
    assert [t.text for t in store.committed] == ["q"]
    await turns.question_saved(99)  # unknown: nothing to wait for


async def test_usage_goes_to_the_meter_and_timings_to_the_log() -> None:
    recorded: list[tuple[int, int | None, str, float]] = []

    class Meter:
        async def admit(self, guild_id: int, user_id: int) -> str | None:
            return None

        async def record(self, guild_id: int, user_id: int | None, kind: str, quantity: float) -> None:
            recorded.append((guild_id, user_id, kind, quantity))

    background = Background()
    bus = events.EventBus()
    log = TimingsLog()
    record_usage(bus, Meter(), background)
    undo = record_timings(bus, log)
    bus.publish(events.UsageIncurred(guild_id=GUILD, at=0.0, user_id=None, kind="tts_characters", quantity=12))
    bus.publish(finished(1, "x", "spoken"))
    undo()
    bus.publish(finished(2, "y", "spoken"))
    await background.drain()
    assert recorded == [(GUILD, None, "tts_characters", 12)]
    assert len(log) == 1
