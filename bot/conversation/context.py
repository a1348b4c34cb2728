"""What a reply needs from the store (recent history and the guild's voice clip), read ahead.

The read starts when the user stops talking, so it runs during the ~200 ms the transcription
needs to finish instead of between the transcript and the chat request. A read-ahead is used only
if this conversation stored no turn since it started (the reply to an earlier question, or an
overheard remark, would be missing from it); otherwise the history is read again (the clip kept).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass

from bot.store import Database, Turn, VoiceClip

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReplyContext:
    history: list[Turn]
    clip: VoiceClip | None


@dataclass(frozen=True, slots=True)
class ReadAhead:
    """A context read in flight, and how many turns this conversation had stored when it began."""

    read: asyncio.Future[ReplyContext]
    stored_turns: int

    def abandon(self) -> None:
        """Nobody will use it: cancel it, or mark a finished read's failure as seen."""
        if not self.read.done():
            self.read.cancel()
        elif not self.read.cancelled():
            self.read.exception()


class ConversationStore:
    """One guild conversation's turn writes and context reads; counts its writes to judge read-aheads."""

    def __init__(self, database: Database, guild_id: int, *, history_turns: int, history_chars: int) -> None:
        self._db = database
        self._guild_id = guild_id
        self._history_turns = history_turns
        self._history_chars = history_chars
        self._stored_turns = 0

    async def add_turn(self, turn: Turn) -> Turn:
        stored = await self._db.turns.add(turn)
        # Counted once committed: a read that began before this commit may not have seen it.
        self._stored_turns += 1
        return stored

    async def remove_turn(self, turn_id: int) -> None:
        await self._db.turns.delete(turn_id)
        self._stored_turns += 1  # history changed: a read that began before is stale
        if not self._db.sole_writer:
            return  # nothing is kept in memory
        # The delete dropped the turn repository's window of this history. A withdrawn question
        # is removed while its member is still talking, and the reply to their whole question
        # comes next: read the window back now, so that reply's context comes from memory (the
        # room benchmark's two_sentences reply waited 2 ms for this database read).
        try:
            await self._history()
        except Exception:  # the next reply reads it again; a failure there is the turn's
            log.warning("Guild %s: could not read the history back", self._guild_id, exc_info=True)

    def read_ahead(self) -> ReadAhead:
        return ReadAhead(asyncio.ensure_future(self._read()), self._stored_turns)

    async def context(self, ahead: ReadAhead | None) -> ReplyContext:
        """The read-ahead's result if nothing was stored since it began; else its clip (this
        conversation writes turns, not clips) with the history read again."""
        if ahead is not None:
            read = ahead.read
            if ahead.stored_turns == self._stored_turns:
                return await read
            if read.done() and not read.cancelled() and read.exception() is None:
                # Awaited directly: the turn repository serves it from memory, so the reply's
                # chat request waits for no task hop and no database round trip (2-8 ms under
                # the room benchmark's load, through gather's two tasks).
                return ReplyContext(history=await self._history(), clip=read.result().clip)
            ahead.abandon()
        return await self._read()

    def _history(self) -> Awaitable[list[Turn]]:
        return self._db.turns.recent(self._guild_id, limit=self._history_turns, max_chars=self._history_chars)

    async def warm(self) -> None:
        """Read once when the conversation starts: the repositories then serve its first reply's
        history and clipless guild from memory (the room benchmark's first question waited 2-8 ms
        for those database reads between its turn and its chat request)."""
        if not self._db.sole_writer:
            return  # nothing would be kept
        try:
            await self._read()
        except Exception:  # the first reply reads again; a failure there is the turn's
            log.warning("Guild %s: could not read the conversation ahead", self._guild_id, exc_info=True)

    async def _read(self) -> ReplyContext:
        if not self._db.sole_writer:
            # Nothing is kept in memory (other processes write): two database reads at once.
            history, clip = await asyncio.gather(self._history(), self._db.clips.get(self._guild_id))
            return ReplyContext(history=history, clip=clip)
        # One after the other, awaited directly: both usually come from the repositories' memory,
        # and then the read takes no loop round trip (gather's two tasks took several, 2-8 ms
        # under the room benchmark's load). A stored clip is a database read either way.
        history = await self._history()
        clip = await self._db.clips.get(self._guild_id)
        return ReplyContext(history=history, clip=clip)
