"""One transcription of a member's speech, as listening tracks it (its audio queue and the
provisional turn prepared for it)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from bot.audio.frames import loud as _loud
from bot.conversation.addressing import AddressingPolicy
from bot.conversation.context import ReadAhead
from bot.conversation.pauses import PauseStream
from bot.conversation.timings import TurnTimings
from bot.conversation.turn import PendingTurn
from bot.store import GuildSettings

_SILENCE = bytes(640)  # 20 ms of 16 kHz mono int16 silence


@dataclass(slots=True)
class Transcription:
    """One transcription of a member's speech: its own queue of audio."""

    user_id: int
    # Packets as (arrival on the loop's clock, 16 kHz PCM); None ends the audio.
    queue: asyncio.Queue[tuple[float, bytes] | None] = field(default_factory=asyncio.Queue)
    continued: bool = False  # the member spoke again before it was finished: its text leads theirs
    provisional: PendingTurn | None = None
    admitted: bool = False  # a voice turn was counted for it already
    refusal: str | None = None  # the meter refused its turn (a notice to post once, or "")
    # The server's turn.end came: no audio is taken after it (speech after it is the next turn's).
    ended: bool = False
    settled: bool = False  # its provisional turn was confirmed on the server's turn.end
    starting: bool = False  # a provisional turn is being made
    early: asyncio.Task[None] | None = None  # our eager end making one (awaited before concluding)
    early_check: asyncio.TimerHandle | None = None  # when the pause will be long enough for it
    partial: str = ""  # the transcript so far
    pauses: PauseStream | None = None  # its audio against real time, once streaming
    ahead: ReadAhead | None = None  # history read while the transcript was being finished
    timings: TurnTimings | None = None
    settings: GuildSettings | None = None  # read as the utterance began
    policy: AddressingPolicy | None = None
    language: str | None = None  # the guild's, else the detected one

    def put(self, pcm: bytes) -> None:
        """A packet of the member's audio, stamped with its arrival (the loop's clock)."""
        self.queue.put_nowait((asyncio.get_running_loop().time(), pcm))

    def close(self) -> None:
        self.queue.put_nowait(None)

    async def audio(self, *, fill: bool, on_pause: Callable[[], None],
                    on_voice: Callable[[], None]) -> AsyncIterator[bytes]:
        """The audio as it arrived, all that is queued at once. With ``fill``, silence fills the
        pauses in real time (the server's clock is the audio it gets; ``PauseStream`` says when
        and how much). ``on_pause``: the member may be pausing; ``on_voice``: they spoke.

        A busy loop (50 talking guilds: each loop turn up to ~0.1-0.3 s) wakes this late; what
        was queued meanwhile is taken in one go (one ``wait_for`` per packet took three loop
        turns: the queue fell up to 34 packets behind), pauses are measured from when packets
        arrived, not from when they were taken, and silence owed is sent at once, not on a timer."""
        loop = asyncio.get_running_loop()
        pauses = self.pauses = PauseStream(loop.time())
        while not self.ended:  # after turn.end no audio is taken (its stream is being cancelled)
            items = self._queued()
            if not items:
                if fill and pauses.due() <= loop.time():
                    on_pause()
                    yield _SILENCE * pauses.fill(loop.time())
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(pauses.due() if fill else None):
                        items = [await self.queue.get()]
                if self.ended or not items:
                    continue
                items += self._queued()
            audio, quiet = bytearray(), False
            for item in items:
                if item is None:
                    break
                at, chunk = item
                if fill:
                    loud = _loud(chunk)
                    if not pauses.packet(at, loud=loud):
                        continue  # quiet, and the silence streamed already stands for it
                    quiet = not loud
                    if loud:
                        on_voice()
                audio += chunk
            if quiet:
                on_pause()
            if audio:
                yield bytes(audio)
            if items[-1] is None:
                return

    def _queued(self) -> list[tuple[float, bytes] | None]:
        items: list[tuple[float, bytes] | None] = []
        while not self.queue.empty() and (not items or items[-1] is not None):
            items.append(self.queue.get_nowait())
        return items


async def made(early: asyncio.Task[None] | None) -> None:
    """Wait for our eager end to have made its turn (its admit waits on the database)."""
    if early is not None:
        await asyncio.wait({early})  # its failure is the loop's to log, not the utterance's
