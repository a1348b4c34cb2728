"""The per-guild event bus, and the events one conversation publishes for a turn."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.audio.utterances import SpeechStarted, UtteranceAudio, UtteranceEnded
from bot.conversation import events
from bot.conversation.context import ConversationStore
from bot.conversation.guild import GuildConversation
from bot.conversation.turn import ConversationLimits
from bot.store import Database, Turn
from tests.bot.conversation.scripted import (
    Alone,
    Crowd,
    InstantPlayer,
    ScriptedChat,
    ScriptedSynthesizer,
    ScriptedTranscriber,
)

GUILD = 5


def started(user_id: int = 1) -> events.SpeechStarted:
    return events.SpeechStarted(guild_id=GUILD, at=1.0, user_id=user_id, began_at=0.8)


def test_handlers_run_in_subscription_order_and_see_subclasses() -> None:
    bus = events.EventBus()
    seen: list[str] = []
    bus.subscribe(events.SpeechStarted, lambda e: seen.append(f"a{e.user_id}"))
    bus.subscribe(events.ConversationEvent, lambda e: seen.append(type(e).__name__))
    bus.subscribe(events.SpeechEnded, lambda e: seen.append("never"))
    bus.subscribe(events.SpeechStarted, lambda e: seen.append(f"b{e.user_id}"))
    bus.publish(started(3))
    assert seen == ["a3", "SpeechStarted", "b3"]


def test_unsubscribe_stops_delivery_even_during_a_publish() -> None:
    bus = events.EventBus()
    seen: list[str] = []
    undo_second: list[events.Unsubscribe] = []
    bus.subscribe(events.SpeechStarted, lambda e: (seen.append("first"), undo_second[0]()))
    undo_second.append(bus.subscribe(events.SpeechStarted, lambda e: seen.append("second")))
    bus.publish(started())  # a snapshot: the second was subscribed when publishing began
    bus.publish(started())
    assert seen == ["first", "second", "first"]
    undo_second[0]()  # twice is harmless


def test_a_failing_handler_is_logged_and_never_breaks_the_publisher(caplog: pytest.LogCaptureFixture) -> None:
    bus = events.EventBus()
    seen: list[int] = []

    def broken(event: events.SpeechStarted) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe(events.SpeechStarted, broken)
    bus.subscribe(events.SpeechStarted, lambda e: seen.append(e.user_id))
    with caplog.at_level(logging.ERROR, logger="bot.conversation.events"):
        bus.publish(started(9))
    assert seen == [9]
    assert "SpeechStarted" in caplog.text and "subscriber bug" in caplog.text


def test_events_are_frozen() -> None:
    event = started()
    with pytest.raises(AttributeError):
        event.user_id = 2  # type: ignore[misc]


def test_played_share() -> None:
    cut = events.ReplyInterrupted(guild_id=1, at=0.0, turn_id=1, user_id=1, heard_text="Hi…",
                                  played_seconds=0.5, spoken_seconds=2.0)
    assert cut.played_share == 0.25
    nothing = events.ReplyInterrupted(guild_id=1, at=0.0, turn_id=1, user_id=1, heard_text="",
                                      played_seconds=0.0, spoken_seconds=0.0)
    assert nothing.played_share == 0.0


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    async with Database.open(f"sqlite:///{tmp_path / 'voxcord.db'}") as db:
        yield db


def say(conversation: GuildConversation, user_id: int) -> None:
    now = time.monotonic()
    conversation.on_heard(user_id, SpeechStarted(at=now, detected_at=now))
    conversation.on_heard(user_id, UtteranceAudio(b"\1\0" * 16_000))
    conversation.on_heard(user_id, UtteranceEnded(duration=1.0, reason="silence", at=now))


async def until(seen: list[events.ConversationEvent], kind: type[events.ConversationEvent]) -> None:
    async with asyncio.timeout(10):
        while not any(isinstance(e, kind) for e in seen):
            await asyncio.sleep(0.01)


def build(database: Database, transcriber: ScriptedTranscriber, chat: ScriptedChat, roster: object,
          player: InstantPlayer | None = None) -> GuildConversation:
    async def notify(message: str) -> None:
        return None

    return GuildConversation(
        guild_id=GUILD, database=database, transcriber=transcriber, chat=chat,  # type: ignore[arg-type]
        synthesizer=ScriptedSynthesizer(), player=player or InstantPlayer(), roster=roster,  # type: ignore[arg-type]
        notify=notify, bot_name="Voxcord", clock=time.monotonic,
    )


async def test_a_started_conversation_reads_ahead_for_its_first_reply(database: Database) -> None:
    await database.turns.add(Turn(id=None, guild_id=GUILD, speaker_id=7, speaker_name="member7", role="user",
                                  text="Earlier question?", created_at=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
                                  interrupted=False))
    conversation = build(database, ScriptedTranscriber(), ScriptedChat(), Alone())
    conversation.start()
    await conversation.stop()  # returns once its background work is done
    limits = ConversationLimits()  # the conversation's own
    pending = ConversationStore(database, GUILD, history_turns=limits.history_turns,
                                history_chars=limits.history_chars).context(None)
    with pytest.raises(StopIteration) as finished:
        pending.send(None)  # served from the repositories' memory: no database round trip
    assert [t.text for t in finished.value.value.history] == ["Earlier question?"]


async def test_one_answered_turn_publishes_its_events_in_order(database: Database) -> None:
    chat = ScriptedChat(["It is noon, and ", "the sun is high. Enjoy ", "your lunch outside today!"])
    conversation = build(database, ScriptedTranscriber("What time is it?"), chat, Alone())
    seen: list[events.ConversationEvent] = []
    conversation.events.subscribe(events.ConversationEvent, seen.append)
    conversation.start()
    try:
        say(conversation, 7)
        await until(seen, events.ReplyFinished)
    finally:
        await conversation.stop()
    flow = [type(e).__name__ for e in seen if not isinstance(e, events.UsageIncurred)]
    assert flow == [
        "SpeechStarted", "SpeechEnded",
        "TranscriptPartial", "TranscriptPartial", "TranscriptPartial", "TranscriptPartial",
        "TranscriptFinal", "TurnAccepted", "ReplyStarted", "ReplySentence", "ReplySentence", "ReplyFinished",
    ]
    partials = [e.text for e in seen if isinstance(e, events.TranscriptPartial)]
    assert partials == ["What", "What time", "What time is", "What time is it?"]
    accepted = next(e for e in seen if isinstance(e, events.TurnAccepted))
    assert (accepted.turn_id, accepted.user_id, accepted.speaker_name, accepted.text) == (
        1, 7, "member7", "What time is it?")
    sentences = [(e.index, e.text) for e in seen if isinstance(e, events.ReplySentence)]
    assert sentences == [(0, "It is noon, and the sun is high."), (1, "Enjoy your lunch outside today!")]
    finished = next(e for e in seen if isinstance(e, events.ReplyFinished))
    assert (finished.turn_id, finished.outcome) == (1, "spoken")
    assert finished.text == "It is noon, and the sun is high. Enjoy your lunch outside today!"
    assert finished.timings.at("transcript_final") is not None and finished.timings.at("done") is not None
    usage = {e.kind: e.quantity for e in seen if isinstance(e, events.UsageIncurred)}
    assert usage == {"stt_seconds": 1.0, "chat_input_tokens": 11, "chat_output_tokens": 7,
                     "tts_characters": len("It is noon, and the sun is high.") + len("Enjoy your lunch outside today!")}
    assert all(e.guild_id == GUILD for e in seen)


async def test_rejected_turns_say_why(database: Database) -> None:
    conversation = build(database, ScriptedTranscriber("the weather is nice", "..."), ScriptedChat(), Crowd())
    seen: list[events.TurnRejected] = []
    conversation.events.subscribe(events.TurnRejected, seen.append)
    accepted: list[events.TurnAccepted] = []
    conversation.events.subscribe(events.TurnAccepted, accepted.append)
    conversation.start()
    try:
        say(conversation, 7)
        async with asyncio.timeout(10):
            while not seen:
                await asyncio.sleep(0.01)
        say(conversation, 8)
        async with asyncio.timeout(10):
            while len(seen) < 2:
                await asyncio.sleep(0.01)
    finally:
        await conversation.stop()
    assert [(e.user_id, e.speaker_name, e.text, e.reason) for e in seen] == [
        (7, "member7", "the weather is nice", "not_addressed"), (8, "member8", "...", "no_words")]
    assert accepted == []
