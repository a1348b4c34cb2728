"""Caption messages and whose each line is, on every backend: what forget-me and retention act on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.store import CaptionLine, CaptionMessage, Database

G1, G2 = 111111111111111111, 222222222222222222
ADA, BOB = 900000000000000001, 900000000000000002
CHANNEL = 333333333333333333
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def posted(message_id: int, *owners: int | None, guild: int = G1, at: datetime = T0) -> CaptionMessage:
    """A message whose lines are 10 characters each, one per owner, joined by newlines."""
    lines = tuple(CaptionLine(owner, i * 11, i * 11 + 10) for i, owner in enumerate(owners))
    return CaptionMessage(guild_id=guild, channel_id=CHANNEL, message_id=message_id, posted_at=at,
                          length=len(owners) * 11 - 1, lines=lines)


async def test_a_message_and_its_lines_round_trip_in_order(database: Database) -> None:
    message = posted(5_000_000_000_000_000_001, ADA, ADA, None, BOB)
    await database.captions.add(message)
    assert await database.captions.get(message.message_id) == message
    assert await database.captions.get(1) is None


async def test_forget_user_marks_only_that_members_lines_in_that_guild(database: Database) -> None:
    await database.captions.add(posted(1, ADA, ADA, BOB, BOB))
    await database.captions.add(posted(2, BOB, BOB))
    await database.captions.add(posted(3, ADA, guild=G2))  # ada elsewhere: not this guild's forget-me
    assert await database.captions.forget_user(G1, ADA) == 2
    [marked] = await database.captions.with_forgotten(G1)
    assert marked.message_id == 1
    assert [(line.user_id, line.forgotten) for line in marked.lines] == [
        (ADA, True), (ADA, True), (BOB, False), (BOB, False)]
    assert await database.captions.with_forgotten(G2) == []
    assert not any(line.forgotten for line in (await database.captions.get(3)).lines)  # type: ignore[union-attr]


async def test_rewrite_keeps_the_lines_left_and_drop_removes_the_message(database: Database) -> None:
    await database.captions.add(posted(1, ADA, BOB))
    await database.captions.forget_user(G1, ADA)
    await database.captions.rewrite(1, 10, [CaptionLine(BOB, 0, 10)])
    assert await database.captions.with_forgotten(G1) == []
    rewritten = await database.captions.get(1)
    assert rewritten is not None and (rewritten.length, rewritten.lines) == (10, (CaptionLine(BOB, 0, 10),))
    await database.captions.drop(1)
    assert await database.captions.get(1) is None
    assert await database.captions.guild_ids() == []


async def test_older_than_is_per_guild_and_strictly_before_the_cutoff(database: Database) -> None:
    await database.captions.add(posted(1, ADA, at=T0 - timedelta(days=10)))
    await database.captions.add(posted(2, ADA, at=T0 - timedelta(days=2)))
    await database.captions.add(posted(3, ADA, at=T0))
    await database.captions.add(posted(4, BOB, guild=G2, at=T0 - timedelta(days=10)))
    old = await database.captions.older_than(G1, T0 - timedelta(days=2))
    assert [m.message_id for m in old] == [1]
    assert [m.message_id for m in await database.captions.older_than(G1, T0 + timedelta(seconds=1))] == [1, 2, 3]
    assert await database.captions.guild_ids() == [G1, G2]
