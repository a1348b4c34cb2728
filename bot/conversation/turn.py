"""A turn on its way from listening to answering, and the limits of one guild's conversation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from bot.conversation.context import ReadAhead
from bot.conversation.ports import Notify
from bot.conversation.timings import TurnTimings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConversationLimits:
    history_turns: int = 20
    history_chars: int = 6000
    max_reply_tokens: int = 200
    backlog: int = 2  # accepted turns waiting for an answer; the oldest is dropped beyond it


DEFAULT_LIMITS = ConversationLimits()


@dataclass(slots=True)
class PendingTurn:
    """An accepted question: what answering needs, read ahead where it could be."""

    turn_id: int
    user_id: int
    speaker_name: str
    text: str
    timings: TurnTimings
    persona: str | None = None
    ahead: ReadAhead | None = None  # history and clip, read while the transcript was finishing
    language: str | None = None  # spoken (detected or the guild's setting): the reply's language
    # Set for a provisional turn (the server's eager end): its reply is prepared at once but heard
    # only once this is set (the turn's end is confirmed). None: confirmed already.
    confirmed: asyncio.Event | None = None
    reply_text: str = ""  # what was heard of the reply, once answered


class Background:
    """Bookkeeping that must not delay a reply (usage rows, turn rows); ``drain`` waits for it."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Future[Any]] = set()

    def spawn(self, work: Awaitable[Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self) -> None:
        # Work may spawn more work (a row waits for the one before it): until none is left.
        while self._tasks:
            await asyncio.wait(set(self._tasks))


async def post(notify: Notify, guild_id: int, message: str) -> None:
    """Say something in the text channel; a channel we cannot post to is not a turn failure."""
    try:
        await notify(message)
    except Exception:
        log.warning("Guild %s: could not post to the text channel", guild_id)
