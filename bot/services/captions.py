"""Captions: each finished turn as text in a channel or thread of the guild's choosing (opt-in).

What deaf and hard-of-hearing members, and anyone who joins late, need: who said what, and what
the bot answered (what was heard of it, when someone talked over it). A conversation subscriber:
it only reads events, so only what the bot heard can be captioned; an opted-out member's audio is
dropped before decryption and never produces an event.

Discord allows about 5 messages per 5 s in a channel. Captions never edit a message per word: the
lines of a window (``CAPTION_WINDOW_SECONDS``) go out together as one message (more only past
Discord's 2,000 characters), in order, and silently (no notification per caption).

Each posted message is recorded (``bot.store.CaptionMessage``) with whose each line is, the bot's
reply belonging to the member it answered, so ``/privacy forget-me`` and the retention sweep can
later cut a member's lines out or delete the message (``bot.services.privacy.captions``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import discord

from bot.conversation import events
from bot.store.models import CaptionLine, CaptionMessage, utc_now

if TYPE_CHECKING:
    import datetime as dt

    from bot.store import Database, GuildSettings

log = logging.getLogger(__name__)

CAPTION_WINDOW_SECONDS = 2.0
MESSAGE_LIMIT = 2000  # Discord's limit on a message's content
# Rejections whose words are captioned: said in the channel, but not answered.
_CAPTIONED_REJECTIONS = frozenset({"not_addressed", "backlog_full"})

Send = Callable[[int, str], Awaitable[int]]  # (channel id, content) -> the posted message's id
ChannelLookup = Callable[[], Awaitable[int | None]]
Record = Callable[[CaptionMessage], Awaitable[None]]
Owned = tuple[int | None, str]  # a line and whose it is (None: nobody's)


def line(name: str, text: str) -> str:
    """``**name**: text``, with the text's markdown escaped (a transcript is not formatting)."""
    return f"**{discord.utils.escape_markdown(name)}**: {discord.utils.escape_markdown(text.strip())}"


def pack(lines: list[str], limit: int = MESSAGE_LIMIT) -> list[str]:
    """Lines joined into as few messages of at most ``limit`` characters as keep each line whole,
    a line longer than ``limit`` split at its last space before the limit (mid-word if none)."""
    return [content for content, _ in pack_owned([(None, whole) for whole in lines], limit)]


def pack_owned(lines: list[Owned], limit: int = MESSAGE_LIMIT) -> list[tuple[str, tuple[CaptionLine, ...]]]:
    """``pack``, keeping whose each piece is: each message's content and its lines' spans in it
    (a line split across messages has a piece, and a span, in each)."""
    pieces: list[Owned] = []
    for owner, whole in lines:
        rest = whole
        while len(rest) > limit:
            cut = rest.rfind(" ", 0, limit + 1)
            cut = cut if cut > 0 else limit
            pieces.append((owner, rest[:cut]))
            rest = rest[cut:].lstrip()
        if rest:
            pieces.append((owner, rest))
    messages: list[tuple[str, list[CaptionLine]]] = []
    for owner, piece in pieces:
        if messages and len(messages[-1][0]) + 1 + len(piece) <= limit:
            content, spans = messages[-1]
            start = len(content) + 1
            messages[-1] = (content + "\n" + piece, [*spans, CaptionLine(owner, start, start + len(piece))])
        else:
            messages.append((piece, [CaptionLine(owner, 0, len(piece))]))
    return [(content, tuple(spans)) for content, spans in messages]


class GuildCaptions:
    """One guild's captions while the bot is in voice: lines from events, one message per window."""

    def __init__(
        self,
        *,
        guild_id: int,
        bot_name: str,
        channel: ChannelLookup,
        send: Send,
        window: float = CAPTION_WINDOW_SECONDS,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        record: Record | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self._guild_id = guild_id
        self._bot_name = bot_name
        self._channel = channel
        self._send = send
        self._window = window
        self._sleep = sleep
        self._record = record
        self._clock = clock
        self._lines: list[Owned] = []
        self._timer: asyncio.Task[None] | None = None
        self._sending = asyncio.Lock()  # windows go out in order even when Discord makes one wait
        self._undo: list[events.Unsubscribe] = []

    def attach(self, bus: events.EventBus) -> None:
        self._undo = [
            bus.subscribe(events.ReplyFinished, self._on_reply_finished),
            bus.subscribe(events.TurnRejected, self._on_rejected),
        ]

    async def close(self) -> None:
        """Unsubscribe, and post what is still waiting for its window now."""
        for undo in self._undo:
            undo()
        self._undo = []
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        await self.flush()

    def _on_reply_finished(self, event: events.ReplyFinished) -> None:
        # The reply is the asker's too: forget-me removes the answers to them with their words.
        lines: list[Owned] = [(event.user_id, line(event.speaker_name, event.question))]
        if event.text.strip():
            reply = line(self._bot_name, event.text)
            lines.append((event.user_id, reply + (" *(interrupted)*" if event.outcome == "interrupted" else "")))
        self._add(lines)

    def _on_rejected(self, event: events.TurnRejected) -> None:
        if event.reason in _CAPTIONED_REJECTIONS and event.text.strip():
            self._add([(event.user_id, line(event.speaker_name, event.text))])

    def _add(self, lines: list[Owned]) -> None:
        self._lines.extend(lines)
        if self._timer is None or self._timer.done():
            self._timer = asyncio.get_running_loop().create_task(self._windows(), name="captions-window")

    async def _windows(self) -> None:
        # Lines that arrive while a window is being posted wait for the next window.
        while self._lines:
            await self._sleep(self._window)
            # Shielded: close() cancels a waiting window, never a post half-way.
            await asyncio.shield(self.flush())

    async def forget(self, user_id: int) -> None:
        """Drop the member's lines still waiting for their window (forget-me), after any post in
        flight is recorded, so the erasure that follows sees every message already posted."""
        async with self._sending:
            self._lines = [(owner, text) for owner, text in self._lines if owner != user_id]

    async def flush(self) -> None:
        # Under the lock even with nothing to post: close() thereby waits for a post in flight.
        async with self._sending:
            lines, self._lines = self._lines, []
            if not lines:
                return
            try:
                # Read at each window, so /settings captions off (from any process) applies at once.
                channel_id = await self._channel()
            except Exception as error:
                log.warning("Guild %s: captions dropped, could not read the setting: %s", self._guild_id, error)
                return
            if channel_id is None:
                return
            for content, spans in pack_owned(lines):
                try:
                    message_id = await self._send(channel_id, content)
                except Exception as error:  # a deleted channel, a lost permission: not the conversation's problem
                    log.warning("Guild %s: could not post captions to %s: %s", self._guild_id, channel_id, error)
                    return
                await self._remember(channel_id, message_id, content, spans)

    async def _remember(self, channel_id: int, message_id: int, content: str, spans: tuple[CaptionLine, ...]) -> None:
        if self._record is None:
            return
        try:
            await self._record(CaptionMessage(
                guild_id=self._guild_id, channel_id=channel_id, message_id=message_id,
                posted_at=self._clock(), length=len(content), lines=spans))
        except Exception as error:
            # Unrecorded, forget-me and retention cannot reach this message: say which one.
            log.warning("Guild %s: caption message %s in %s not recorded (%s); forget-me and retention "
                        "will not reach it", self._guild_id, message_id, channel_id, type(error).__name__)


class CaptionsService:
    """Turns captions on and off for a guild, and follows each guild's conversation while in voice."""

    def __init__(
        self, database: Database, *, bot_name: Callable[[discord.Guild], str],
        window: float = CAPTION_WINDOW_SECONDS,
    ) -> None:
        self._db = database
        self._bot_name = bot_name  # the name the conversation uses for the bot in this guild
        self._window = window
        self._active: dict[int, set[GuildCaptions]] = {}  # guild id -> captions following a conversation

    async def forget_pending(self, guild_id: int, user_id: int) -> None:
        """Forget-me, before the posted messages are erased: the member's lines not posted yet go."""
        for captions in list(self._active.get(guild_id, ())):
            await captions.forget(user_id)

    async def turn_on(self, guild_id: int, channel_id: int) -> GuildSettings:
        return await self._db.guilds.update(guild_id, captions_channel_id=channel_id)

    async def turn_off(self, guild_id: int) -> GuildSettings:
        return await self._db.guilds.update(guild_id, captions_channel_id=None)

    def attach(self, guild: discord.Guild, bus: events.EventBus) -> Callable[[], Awaitable[None]]:
        """``ConversationEngine`` subscriber: captions for this guild until the returned close."""

        async def channel() -> int | None:
            return (await self._db.guilds.get(guild.id)).captions_channel_id

        async def send(channel_id: int, text: str) -> int:
            target = guild.get_channel_or_thread(channel_id)
            if not isinstance(target, discord.abc.Messageable):
                raise LookupError("the captions channel no longer exists")
            message = await target.send(text, allowed_mentions=discord.AllowedMentions.none(), silent=True)
            return message.id

        captions = GuildCaptions(
            guild_id=guild.id, bot_name=self._bot_name(guild), channel=channel, send=send,
            window=self._window, record=self._db.captions.add,
        )
        captions.attach(bus)
        self._active.setdefault(guild.id, set()).add(captions)

        async def close() -> None:
            try:
                await captions.close()
            finally:
                active = self._active.get(guild.id, set())
                active.discard(captions)
                if not active:
                    self._active.pop(guild.id, None)

        return close
