"""Caption messages under forget-me and retention: the eraser on a real SQLite store, a scripted
Discord (``Messages``) and injected clocks. Through the loopback Discord: tests/cogs/test_caption_erasure.py."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from bot.services.captions import line, pack_owned
from bot.services.privacy import (
    CaptionEraser,
    CaptionsErased,
    MessageGoneError,
    MessageUnreadableError,
    PrivacyService,
    RetentionPurger,
)
from bot.store import CaptionMessage, Database
from tests.bot.services.privacy.conftest import NOW
from tests.bot.store.support import FakeClock

GUILD, OTHER_GUILD = 10, 20
CHANNEL = 55
ALICE, BOB = 1001, 1002
TOKEN = "Bot sEcReT.token.value"  # what a careless log line would leak from a request


class Messages:
    """Discord's side, as ``CaptionMessages`` sees it: contents by message id, and scripted faults."""

    def __init__(self) -> None:
        self.contents: dict[int, str] = {}
        self.faults: dict[str, Exception] = {}  # action -> raised (until cleared)
        self.calls: list[tuple[str, int]] = []

    def _check(self, action: str, message_id: int) -> None:
        self.calls.append((action, message_id))
        if action in self.faults:
            raise self.faults[action]
        if message_id not in self.contents:
            raise MessageGoneError

    async def content(self, channel_id: int, message_id: int) -> str:
        self._check("content", message_id)
        return self.contents[message_id]

    async def edit(self, channel_id: int, message_id: int, content: str) -> None:
        self._check("edit", message_id)
        self.contents[message_id] = content

    async def delete(self, channel_id: int, message_id: int) -> None:
        self._check("delete", message_id)
        del self.contents[message_id]


class ServerError(Exception):
    """What discord.py's HTTPException looks like to the eraser: a status, a code, a noisy text."""

    status = 503
    code = 0

    def __str__(self) -> str:
        return f"503 Service Unavailable; request headers Authorization: {TOKEN}"


class Monotonic:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def messages() -> Messages:
    return Messages()


@pytest.fixture
def eraser(database: Database, messages: Messages) -> CaptionEraser:
    return CaptionEraser(database=database, messages=messages, monotonic=Monotonic())


async def post(database: Database, messages: Messages, message_id: int, *said: tuple[int | None, str],
               guild: int = GUILD, age: dt.timedelta = dt.timedelta(minutes=5)) -> str:
    """Post one caption message as the captions subscriber does, and record it."""
    [(content, spans)] = pack_owned([(owner, line(f"user{owner}", text)) for owner, text in said])
    messages.contents[message_id] = content
    await database.captions.add(CaptionMessage(guild_id=guild, channel_id=CHANNEL, message_id=message_id,
                                               posted_at=NOW - age, length=len(content), lines=spans))
    return content


async def test_forget_cuts_the_members_lines_and_answers_out_and_keeps_everyone_elses(
    database: Database, messages: Messages, eraser: CaptionEraser
) -> None:
    await post(database, messages, 1, (ALICE, "Is it raining?"), (ALICE, "Yes, take an umbrella."),
               (BOB, "What about tomorrow?"), (BOB, "Sunny."))
    await post(database, messages, 2, (ALICE, "Thanks!"), (ALICE, "You're welcome."))
    await post(database, messages, 3, (BOB, "Bye."))
    await post(database, messages, 4, (ALICE, "Here too?"), guild=OTHER_GUILD)

    assert await eraser.forget(GUILD, ALICE) == CaptionsErased(edited=1, deleted=1)
    assert messages.contents[1] == "**user1002**: What about tomorrow?\n**user1002**: Sunny."
    assert 2 not in messages.contents  # nothing else was in it
    assert messages.contents[3] == "**user1002**: Bye."
    assert 4 in messages.contents  # forget-me is per guild
    assert await database.captions.get(2) is None

    # The spans follow the edit: forgetting bob next cuts the right text out of the edited message.
    assert await eraser.forget(GUILD, BOB) == CaptionsErased(deleted=2)
    assert set(messages.contents) == {4}
    assert await database.captions.guild_ids() == [OTHER_GUILD]


async def test_spans_stay_right_after_an_edit_in_the_middle(
    database: Database, messages: Messages, eraser: CaptionEraser
) -> None:
    await post(database, messages, 1, (BOB, "One"), (ALICE, "Two, with *stars*"), (None, "Three"), (BOB, "Four"))
    await eraser.forget(GUILD, ALICE)
    assert messages.contents[1] == "**user1002**: One\n**userNone**: Three\n**user1002**: Four"
    await eraser.forget(GUILD, BOB)
    assert messages.contents[1] == "**userNone**: Three"


async def test_a_message_someone_deleted_already_is_done(
    database: Database, messages: Messages, eraser: CaptionEraser
) -> None:
    await post(database, messages, 1, (ALICE, "Mine"), (BOB, "His"))
    await post(database, messages, 2, (ALICE, "Only mine"))
    del messages.contents[1], messages.contents[2]  # a moderator cleaned the channel up
    assert await eraser.forget(GUILD, ALICE) == CaptionsErased(deleted=2)
    assert await database.captions.guild_ids() == []


async def test_other_failures_are_logged_without_secrets_and_retried_by_the_sweep(
    database: Database, messages: Messages, eraser: CaptionEraser, clock: FakeClock,
    caplog: pytest.LogCaptureFixture
) -> None:
    await post(database, messages, 1, (ALICE, "Mine"), (BOB, "His"))
    await post(database, messages, 2, (ALICE, "Only mine"))
    messages.faults = {"edit": ServerError(), "delete": ServerError()}
    with caplog.at_level(logging.WARNING, logger="bot.services.privacy.captions"):
        assert await eraser.forget(GUILD, ALICE) == CaptionsErased(pending=2)
    assert "could not edit caption message 1" in caplog.text and "ServerError 503" in caplog.text
    assert "could not delete caption message 2" in caplog.text
    assert "sEcReT" not in caplog.text
    assert "**user1001**: Mine" in messages.contents[1] and 2 in messages.contents  # still there...
    assert len(await database.captions.with_forgotten(GUILD)) == 2  # ...and still marked

    messages.faults = {}
    purger = RetentionPurger(database=database, clock=clock, captions=eraser)
    await purger.run_once()
    assert messages.contents == {1: "**user1002**: His"}
    assert await database.captions.with_forgotten(GUILD) == []


async def test_forget_answers_within_its_budget_and_leaves_the_rest_to_the_sweep(
    database: Database, messages: Messages, clock: FakeClock
) -> None:
    monotonic = Monotonic()
    slow = Messages()
    slow.contents = messages.contents

    async def slow_delete(channel_id: int, message_id: int) -> None:
        monotonic.now += 4.0  # Discord making the bot wait (rate limits)
        await Messages.delete(slow, channel_id, message_id)

    slow.delete = slow_delete  # type: ignore[method-assign]
    eraser = CaptionEraser(database=database, messages=slow, monotonic=monotonic, forget_budget=10.0)
    for message_id in range(1, 6):
        await post(database, messages, message_id, (ALICE, f"Line {message_id}"))
    assert await eraser.forget(GUILD, ALICE) == CaptionsErased(deleted=3, pending=2)
    assert sorted(messages.contents) == [4, 5]
    await RetentionPurger(database=database, clock=clock, captions=eraser).run_once()
    assert messages.contents == {}


async def test_a_message_not_as_recorded_or_unreadable_is_deleted_whole(
    database: Database, messages: Messages, eraser: CaptionEraser
) -> None:
    await post(database, messages, 1, (ALICE, "Mine"), (BOB, "His"))
    await post(database, messages, 2, (ALICE, "Mine again"), (BOB, "His again"))
    messages.contents[1] += " (edited)"  # an edit whose row update was lost: the spans no longer fit
    await eraser.forget(GUILD, ALICE)
    assert 1 not in messages.contents and messages.contents[2] == "**user1002**: His again"

    await post(database, messages, 3, (ALICE, "Third"), (BOB, "Third his"))
    messages.faults = {"content": MessageUnreadableError()}  # no Read Message History there
    assert await eraser.forget(GUILD, ALICE) == CaptionsErased(deleted=1)
    assert 3 not in messages.contents


async def test_retention_deletes_caption_messages_past_each_guilds_period(
    database: Database, messages: Messages, eraser: CaptionEraser, clock: FakeClock
) -> None:
    day = dt.timedelta(days=1)
    await database.guilds.update(OTHER_GUILD, retention_days=7)
    await post(database, messages, 1, (ALICE, "31 days"), age=31 * day)
    await post(database, messages, 2, (BOB, "29 days"), age=29 * day)
    await post(database, messages, 3, (ALICE, "8 days elsewhere"), guild=OTHER_GUILD, age=8 * day)
    await post(database, messages, 4, (BOB, "3 days elsewhere"), guild=OTHER_GUILD, age=3 * day)
    await post(database, messages, 5, (BOB, "gone already"), age=40 * day)
    del messages.contents[5]
    messages.faults = {"delete": ServerError()}
    purger = RetentionPurger(database=database, clock=clock, captions=eraser)
    await purger.run_once()  # no turns stored: the guilds come from the caption records
    assert sorted(messages.contents) == [1, 2, 3, 4]  # Discord failing: nothing lost, retried next time
    messages.faults = {}
    await purger.run_once()
    assert sorted(messages.contents) == [2, 4]
    assert [m.message_id for m in await database.captions.older_than(GUILD, NOW)] == [2]
    clock.advance(2 * day)
    await purger.run_once()
    assert sorted(messages.contents) == [4]


async def test_forget_me_and_shorter_retention_reach_the_captions_through_the_service(
    database: Database, messages: Messages, eraser: CaptionEraser, clock: FakeClock
) -> None:
    service = PrivacyService(database=database, stt_host="api.mistral.ai", clock=clock, captions=eraser)
    await post(database, messages, 1, (ALICE, "Mine"), (BOB, "His"))
    await post(database, messages, 2, (BOB, "Ten days old"), age=dt.timedelta(days=10))
    forgotten = await service.forget(GUILD, ALICE, forget_choice=False)
    assert forgotten.captions == CaptionsErased(edited=1)
    assert messages.contents[1] == "**user1002**: His"
    await service.set_retention(GUILD, 5)
    assert sorted(messages.contents) == [1]


async def test_forget_me_reports_only_the_members_own_messages(
    database: Database, messages: Messages, eraser: CaptionEraser, clock: FakeClock
) -> None:
    await post(database, messages, 1, (BOB, "Bob's"), (ALICE, "Alice's"))
    await post(database, messages, 2, (BOB, "Bob alone"))
    messages.faults = {"delete": ServerError(), "edit": ServerError()}
    assert await eraser.forget(GUILD, BOB) == CaptionsErased(pending=2)
    messages.faults = {}
    await post(database, messages, 3, (ALICE, "Alice alone"))
    # Alice's forget-me cuts message 1 (hers too) and deletes 3; bob's lone message is not hers to count.
    assert await eraser.forget(GUILD, ALICE) == CaptionsErased(edited=0, deleted=2)
    assert set(messages.contents) == {2}
    await RetentionPurger(database=database, clock=clock, captions=eraser).run_once()
    assert messages.contents == {}
