"""Caption messages follow the privacy promises: forget-me cuts a member's lines out, retention
deletes old messages.

Captions are ordinary Discord messages (``bot.services.captions``); the store records whose each
line is, as a span of the content, never the text. To cut lines out the bot reads the message back
(only the bot can edit its own message, so the content is what it posted, which the stored length
checks), keeps the other lines, and edits the message, or deletes it when nothing else is left.

Discord failures never lose the promise silently: a message someone already deleted (404) is done;
any other failure is logged and the lines stay marked, so the next retention sweep tries again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

import discord

from bot.store.models import CaptionLine, CaptionMessage

if TYPE_CHECKING:
    import datetime as dt

    from bot.store import Database

log = logging.getLogger(__name__)

# How long forget-me spends on Discord before answering; what is left waits for the next sweep.
# Edits share Discord's ~5 per 5 s per channel, and the member waits on a "thinking..." reply.
FORGET_BUDGET_SECONDS = 30.0

Outcome = Literal["edited", "deleted", "failed"]


class MessageGoneError(Exception):
    """The message (or its channel) no longer exists on Discord: nothing left to remove."""


class MessageUnreadableError(Exception):
    """The bot may not read the message back (no Read Message History there), so it cannot keep
    the other lines: the message is deleted whole rather than left with the member's words."""


class CaptionMessages(Protocol):
    """The Discord calls erasure needs, by channel and message id (no cache, no guild object)."""

    async def content(self, channel_id: int, message_id: int) -> str: ...
    async def edit(self, channel_id: int, message_id: int, content: str) -> None: ...
    async def delete(self, channel_id: int, message_id: int) -> None: ...


class DiscordCaptionMessages:
    """``CaptionMessages`` over discord.py's REST client; a 404 becomes ``MessageGoneError``."""

    def __init__(self, client: Callable[[], discord.Client]) -> None:
        # A getter: the bot is built after the services that use this (bot/__main__.py).
        self._client = client

    def _message(self, channel_id: int, message_id: int) -> discord.PartialMessage:
        return self._client().get_partial_messageable(channel_id).get_partial_message(message_id)

    async def content(self, channel_id: int, message_id: int) -> str:
        try:
            return (await self._message(channel_id, message_id).fetch()).content
        except discord.NotFound as error:
            raise MessageGoneError from error
        except discord.Forbidden as error:
            # 50013: visible but no Read Message History; 50001 (no access at all) stays a failure.
            if error.code == 50013:
                raise MessageUnreadableError from error
            raise

    async def edit(self, channel_id: int, message_id: int, content: str) -> None:
        try:
            await self._message(channel_id, message_id).edit(
                content=content, allowed_mentions=discord.AllowedMentions.none())
        except discord.NotFound as error:
            raise MessageGoneError from error

    async def delete(self, channel_id: int, message_id: int) -> None:
        try:
            await self._message(channel_id, message_id).delete()
        except discord.NotFound as error:
            raise MessageGoneError from error


@dataclass(frozen=True, slots=True)
class CaptionsErased:
    """Caption messages changed: ``edited`` (lines cut out), ``deleted`` (nothing else was left,
    or they were too old; includes ones already gone), ``pending`` (left for the next sweep)."""

    edited: int = 0
    deleted: int = 0
    pending: int = 0

    def __add__(self, other: CaptionsErased) -> CaptionsErased:
        return CaptionsErased(self.edited + other.edited, self.deleted + other.deleted,
                              self.pending + other.pending)


def cut(content: str, lines: tuple[CaptionLine, ...]) -> tuple[str, tuple[CaptionLine, ...]]:
    """The content without the forgotten lines, and the kept lines' spans in it."""
    kept: list[CaptionLine] = []
    pieces: list[str] = []
    at = 0
    for line in lines:
        if line.forgotten:
            continue
        piece = content[line.start:line.end]
        start = at + (1 if pieces else 0)
        kept.append(CaptionLine(line.user_id, start, start + len(piece)))
        pieces.append(piece)
        at = start + len(piece)
    return "\n".join(pieces), tuple(kept)


class CaptionEraser:
    """Removes a member's caption lines (forget-me) and old caption messages (retention).

    One guild's messages are changed one at a time (a lock per guild), so a forget-me and a sweep
    never edit the same message from stale spans. ``monotonic`` is injected for the budget.
    """

    def __init__(self, *, database: Database, messages: CaptionMessages,
                 monotonic: Callable[[], float] = time.monotonic,
                 forget_budget: float = FORGET_BUDGET_SECONDS,
                 before_forget: Callable[[int, int], Awaitable[None]] | None = None) -> None:
        self._db = database
        # (guild id, user id): drops the member's caption lines not posted yet (CaptionsService).
        self._before_forget = before_forget
        self._messages = messages
        self._monotonic = monotonic
        self._forget_budget = forget_budget
        self._locks: dict[int, asyncio.Lock] = {}

    async def forget(self, guild_id: int, user_id: int) -> CaptionsErased:
        """Cut the member's lines (and the bot's answers to them) out of the guild's captions."""
        if self._before_forget is not None:
            await self._before_forget(guild_id, user_id)
        await self._db.captions.forget_user(guild_id, user_id)
        # Only this member's messages: the counts are what forget-me tells them.
        return await self.retry_forgotten(guild_id, user_id=user_id, budget=self._forget_budget)

    async def retry_forgotten(self, guild_id: int, *, user_id: int | None = None,
                              budget: float | None = None) -> CaptionsErased:
        """Every message of the guild still holding forgotten lines (``user_id``'s, if given);
        ``budget`` seconds at most."""
        async with self._locks.setdefault(guild_id, asyncio.Lock()):
            pending = await self._db.captions.with_forgotten(guild_id, user_id)
            return await self._each(pending, self._erase, budget)

    async def expire(self, guild_id: int, cutoff: dt.datetime, *, budget: float | None = None) -> CaptionsErased:
        """Delete the guild's caption messages posted before ``cutoff``; ``budget`` seconds at most."""
        async with self._locks.setdefault(guild_id, asyncio.Lock()):
            return await self._each(await self._db.captions.older_than(guild_id, cutoff), self._delete, budget)

    @property
    def budget(self) -> float:
        """Seconds a command waiting on Discord spends here before answering."""
        return self._forget_budget

    async def _each(self, messages: list[CaptionMessage], act: Callable[[CaptionMessage], Awaitable[Outcome]],
                    budget: float | None) -> CaptionsErased:
        deadline = None if budget is None else self._monotonic() + budget
        counts = {"edited": 0, "deleted": 0, "failed": 0}
        for done, message in enumerate(messages):
            if deadline is not None and self._monotonic() >= deadline:
                return CaptionsErased(counts["edited"], counts["deleted"],
                                      counts["failed"] + len(messages) - done)
            counts[await act(message)] += 1
        return CaptionsErased(counts["edited"], counts["deleted"], counts["failed"])

    async def _erase(self, message: CaptionMessage) -> Outcome:
        if all(line.forgotten for line in message.lines):
            return await self._delete(message)
        try:
            try:
                content = await self._messages.content(message.channel_id, message.message_id)
            except MessageUnreadableError:
                log.warning("Guild %s: may not read caption message %s back (Read Message History); "
                            "deleting it whole", message.guild_id, message.message_id)
                return await self._delete(message)
            if len(content) != message.length:
                # Not the content the spans describe (an edit whose row update was lost): the
                # forgotten lines cannot be found in it, so the whole message goes.
                log.warning("Guild %s: caption message %s is not as recorded; deleting it whole",
                            message.guild_id, message.message_id)
                return await self._delete(message)
            new_content, kept = cut(content, message.lines)
            await self._messages.edit(message.channel_id, message.message_id, new_content)
        except MessageGoneError:
            await self._db.captions.drop(message.message_id)
            return "deleted"
        except Exception as error:
            return self._failed(message, "edit", error)
        await self._db.captions.rewrite(message.message_id, len(new_content), kept)
        return "edited"

    async def _delete(self, message: CaptionMessage) -> Outcome:
        try:
            await self._messages.delete(message.channel_id, message.message_id)
        except MessageGoneError:
            pass  # someone deleted it already: the promise is kept
        except Exception as error:
            return self._failed(message, "delete", error)
        await self._db.captions.drop(message.message_id)
        return "deleted"

    @staticmethod
    def _failed(message: CaptionMessage, action: str, error: Exception) -> Outcome:
        # The status and Discord's error code only: never the request, which carries the token.
        status = getattr(error, "status", None)
        code = getattr(error, "code", None)
        log.warning("Guild %s: could not %s caption message %s in channel %s (%s%s%s); retrying at the "
                    "next sweep", message.guild_id, action, message.message_id, message.channel_id,
                    type(error).__name__, f" {status}" if status else "", f" code {code}" if code else "")
        return "failed"
