"""One transcription of a member's speech, as listening tracks it (its audio queue and the
provisional turn prepared for it)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bot.conversation.addressing import AddressingPolicy
from bot.conversation.context import ReadAhead
from bot.conversation.pauses import PauseStream
from bot.conversation.timings import TurnTimings
from bot.conversation.turn import PendingTurn
from bot.store import GuildSettings


@dataclass(slots=True)
class Transcription:
    """One transcription of a member's speech: its own queue of audio."""

    user_id: int
    queue: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    continued: bool = False  # the member spoke again before it was finished: its text leads theirs
    provisional: PendingTurn | None = None
    admitted: bool = False  # a voice turn was counted for it already
    refusal: str | None = None  # the meter refused its turn (a notice to post once, or "")
    # The server's turn.end came: no audio is taken after it (speech after it is the next turn's).
    ended: bool = False
    settled: bool = False  # its provisional turn was confirmed on the server's turn.end
    starting: bool = False  # a provisional turn is being made
    early: asyncio.Task[None] | None = None  # our eager end making one (awaited before concluding)
    partial: str = ""  # the transcript so far
    pauses: PauseStream | None = None  # its audio against real time, once streaming
    ahead: ReadAhead | None = None  # history read while the transcript was being finished
    timings: TurnTimings | None = None
    settings: GuildSettings | None = None  # read as the utterance began
    policy: AddressingPolicy | None = None
    language: str | None = None  # the guild's, else the detected one

    async def arrived(self) -> list[bytes | None]:
        """Everything queued (up to the end, None), waiting only while nothing is. One wakeup
        for a backlog: at 50 talking guilds, taking packets one ``wait_for`` at a time (three
        loop turns each) let the queue fall up to 34 packets (~0.7 s) behind the speaker."""
        items = [await self.queue.get()]
        if self.ended:
            return [None]  # taken as turn.end came (its stream is being cancelled): no more audio
        while items[-1] is not None and not self.queue.empty():
            items.append(self.queue.get_nowait())
        return items


async def made(early: asyncio.Task[None] | None) -> None:
    """Wait for our eager end to have made its turn (its admit waits on the database)."""
    if early is not None:
        await asyncio.wait({early})  # its failure is the loop's to log, not the utterance's
