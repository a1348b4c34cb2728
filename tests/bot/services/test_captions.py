"""Captions from conversation events: batched per window, packed under Discord's limit, in order."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest

from bot.conversation import events
from bot.conversation.timings import TurnTimings
from bot.services.captions import MESSAGE_LIMIT, GuildCaptions, line, pack, pack_owned
from bot.store.models import CaptionLine, CaptionMessage

G = 1


class Windows:
    """The captions' sleep, released by the test: a window ends when the test says so."""

    def __init__(self) -> None:
        self.waiting: list[asyncio.Future[None]] = []

    async def sleep(self, seconds: float) -> None:
        assert seconds == 2.0
        future = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        await future

    async def end(self) -> None:
        async with asyncio.timeout(5):
            while not self.waiting:
                await asyncio.sleep(0)
        self.waiting.pop(0).set_result(None)
        for _ in range(5):
            await asyncio.sleep(0)


class Channel:
    def __init__(self, channel_id: int | None = 55) -> None:
        self.channel_id = channel_id
        self.sent: list[tuple[int, str]] = []
        self.fail = False

    async def lookup(self) -> int | None:
        return self.channel_id

    async def send(self, channel_id: int, text: str) -> int:
        if self.fail:
            raise PermissionError("403 Missing Access")
        self.sent.append((channel_id, text))
        return 1000 + len(self.sent)  # the posted message's id


def finished(turn: int, question: str, reply: str, outcome: events.ReplyOutcome = "spoken",
             speaker: str = "bob", user_id: int = 7) -> events.ReplyFinished:
    return events.ReplyFinished(guild_id=G, at=0.0, turn_id=turn, user_id=user_id, speaker_name=speaker,
                                question=question, text=reply, outcome=outcome,
                                timings=TurnTimings(clock=lambda: 0.0))


def rejected(text: str, reason: events.RejectReason, speaker: str = "alice") -> events.TurnRejected:
    return events.TurnRejected(guild_id=G, at=0.0, user_id=8, speaker_name=speaker, text=text, reason=reason)


@pytest.fixture
def rig() -> tuple[events.EventBus, GuildCaptions, Channel, Windows]:
    bus, channel, windows = events.EventBus(), Channel(), Windows()
    captions = GuildCaptions(guild_id=G, bot_name="Voxcord", channel=channel.lookup, send=channel.send,
                             sleep=windows.sleep)
    captions.attach(bus)
    return bus, captions, channel, windows


async def test_turns_in_one_window_go_out_as_one_message_in_order(rig) -> None:
    bus, captions, channel, windows = rig
    bus.publish(finished(1, "What is the capital of France?", "Paris."))
    bus.publish(rejected("Did you feed the cat?", "not_addressed"))
    bus.publish(finished(2, "And of Spain?", "Madrid is the capital of Spain. It is", outcome="interrupted"))
    assert channel.sent == []  # nothing before the window ends: never a message per line
    await windows.end()
    assert channel.sent == [(55, "\n".join([
        "**bob**: What is the capital of France?",
        "**Voxcord**: Paris.",
        "**alice**: Did you feed the cat?",
        "**bob**: And of Spain?",
        "**Voxcord**: Madrid is the capital of Spain. It is *(interrupted)*",
    ]))]
    bus.publish(finished(3, "Thanks!", ""))  # a failed or silent reply: the question alone
    await windows.end()
    assert channel.sent[-1] == (55, "**bob**: Thanks!")
    assert windows.waiting == []  # idle: no timer left running
    await captions.close()


async def test_noise_refusals_and_failed_transcriptions_are_not_captioned(rig) -> None:
    bus, captions, channel, _ = rig
    for reason in ("no_words", "refused", "transcription_failed"):
        bus.publish(rejected("hmm" if reason == "no_words" else "", reason))  # type: ignore[arg-type]
    await captions.close()
    assert channel.sent == []


async def test_close_posts_what_waits_at_once_and_unsubscribes(rig) -> None:
    bus, captions, channel, windows = rig
    bus.publish(finished(1, "Last question?", "Last answer."))
    await captions.close()
    assert channel.sent == [(55, "**bob**: Last question?\n**Voxcord**: Last answer.")]
    bus.publish(finished(2, "After leaving?", "No."))
    await asyncio.sleep(0)
    assert len(channel.sent) == 1 and not windows.waiting


async def test_captions_turned_off_mid_call_post_nothing_more(rig) -> None:
    bus, captions, channel, windows = rig
    bus.publish(finished(1, "One", "Uno."))
    await windows.end()
    channel.channel_id = None  # /settings captions off, read at the next window
    bus.publish(finished(2, "Two", "Dos."))
    await windows.end()
    await captions.close()
    assert [text for _, text in channel.sent] == ["**bob**: One\n**Voxcord**: Uno."]


async def test_a_failing_channel_is_logged_and_never_reaches_the_conversation(
    rig, caplog: pytest.LogCaptureFixture
) -> None:
    bus, captions, channel, windows = rig
    channel.fail = True
    with caplog.at_level(logging.WARNING, logger="bot.services.captions"):
        bus.publish(finished(1, "Hello?", "Hi."))
        await windows.end()
    assert "could not post captions" in caplog.text
    channel.fail = False
    bus.publish(finished(2, "Still there?", "Yes."))
    await windows.end()
    assert [text for _, text in channel.sent] == ["**bob**: Still there?\n**Voxcord**: Yes."]
    await captions.close()


def test_markdown_and_mentions_in_speech_stay_text() -> None:
    assert line("b*o*b", "I **love** @everyone") == r"**b\*o\*b**: I \*\*love\*\* @everyone"


def test_pack_keeps_lines_whole_and_splits_only_what_cannot_fit() -> None:
    short = [f"line {i}" for i in range(3)]
    assert pack(short) == ["line 0\nline 1\nline 2"]
    long_line = " ".join(["word"] * 1000)  # 4,999 characters
    packed = pack(["first", long_line, "last"])
    assert all(len(m) <= MESSAGE_LIMIT for m in packed)
    assert " ".join(m.replace("\n", " ") for m in packed) == " ".join(["first", long_line, "last"])
    assert all(not m.startswith(" ") and not m.endswith(" ") for m in packed)  # cut at spaces
    assert packed[0] == "first" and packed[-1].endswith("\nlast") and len(packed) == 4
    unbroken = "x" * 4500
    assert [len(m) for m in pack([unbroken])] == [2000, 2000, 500]
    many = [f"{i:04d} " + "y" * 95 for i in range(60)]  # 100-char lines: 19 fit per message
    assert [m.count("\n") + 1 for m in pack(many)] == [19, 19, 19, 3]


async def test_each_posted_message_is_recorded_with_whose_each_line_is() -> None:
    bus, channel, windows = events.EventBus(), Channel(), Windows()
    recorded: list[CaptionMessage] = []

    async def record(message: CaptionMessage) -> None:
        recorded.append(message)

    at = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    captions = GuildCaptions(guild_id=G, bot_name="Voxcord", channel=channel.lookup, send=channel.send,
                             sleep=windows.sleep, record=record, clock=lambda: at)
    captions.attach(bus)
    bus.publish(finished(1, "Where is Ada?", "In the kitchen.", user_id=7))
    bus.publish(rejected("Not me.", "not_addressed"))  # alice, user 8
    bus.publish(finished(2, "Thanks", "", user_id=7))
    await windows.end()
    [(channel_id, content)] = channel.sent
    [message] = recorded
    assert (message.guild_id, message.channel_id, message.message_id) == (G, channel_id, 1001)
    assert (message.posted_at, message.length) == (at, len(content))
    # The bot's answer belongs to the member it answered: forget-me takes both.
    assert [(line.user_id, content[line.start:line.end]) for line in message.lines] == [
        (7, "**bob**: Where is Ada?"), (7, "**Voxcord**: In the kitchen."), (8, "**alice**: Not me."),
        (7, "**bob**: Thanks")]
    await captions.close()


async def test_a_message_that_could_not_be_recorded_is_still_posted_and_logged(
    caplog: pytest.LogCaptureFixture
) -> None:
    bus, channel, windows = events.EventBus(), Channel(), Windows()

    async def record(message: CaptionMessage) -> None:
        raise OSError("database is locked")

    captions = GuildCaptions(guild_id=G, bot_name="Voxcord", channel=channel.lookup, send=channel.send,
                             sleep=windows.sleep, record=record)
    captions.attach(bus)
    with caplog.at_level(logging.WARNING, logger="bot.services.captions"):
        bus.publish(finished(1, "Hello?", "Hi."))
        await windows.end()
    assert len(channel.sent) == 1
    assert "caption message 1001 in 55 not recorded" in caplog.text
    await captions.close()


def test_pack_owned_spans_cover_each_piece_even_across_messages() -> None:
    long_line = " ".join(["word"] * 500)  # 2,499 characters: split in two
    packed = pack_owned([(1, "first"), (2, long_line), (None, "last")])
    assert [content for content, _ in packed] == pack(["first", long_line, "last"])
    pieces = [(line.user_id, content[line.start:line.end]) for content, spans in packed for line in spans]
    assert [owner for owner, _ in pieces] == [1, 2, 2, None]
    assert " ".join(piece for _, piece in pieces) == " ".join(["first", long_line, "last"])
    for content, spans in packed:  # the spans and the newlines between them are the whole message
        assert "\n".join(content[line.start:line.end] for line in spans) == content
    assert packed[0][1][0] == CaptionLine(1, 0, 5)


async def test_forget_drops_the_members_lines_still_waiting_and_waits_for_a_post_in_flight() -> None:
    bus, channel, windows = events.EventBus(), Channel(), Windows()
    recorded: list[CaptionMessage] = []
    release = asyncio.Event()

    async def record(message: CaptionMessage) -> None:
        await release.wait()  # the database is slow: the post is in flight until released
        recorded.append(message)

    captions = GuildCaptions(guild_id=G, bot_name="Voxcord", channel=channel.lookup, send=channel.send,
                             sleep=windows.sleep, record=record)
    captions.attach(bus)
    bus.publish(finished(1, "Posted before forget-me", "Yes.", user_id=7))
    await windows.end()  # the window's post is now waiting on its record
    bus.publish(finished(2, "Still waiting for its window", "Indeed.", user_id=7))
    bus.publish(rejected("Mine stays.", "not_addressed"))  # alice, user 8
    forgetting = asyncio.ensure_future(captions.forget(7))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not forgetting.done()  # erasure must not start before the posted message is recorded
    release.set()
    await asyncio.wait_for(forgetting, 5)
    assert len(recorded) == 1
    await windows.end()
    assert [text for _, text in channel.sent][1:] == ["**alice**: Mine stays."]
    await captions.close()
