"""One utterance's audio inside ``StreamingTranscriber``: buffered as it is pulled, sent as soon as
it can be.

The pump pulls the caller's audio into ``buffer`` (kept whole for the batch fallback). Before the
realtime socket is open, audio piles up there and the session's sender sends it once connected;
after that the pump sends each piece itself, in the same loop turn it pulled it. (Handing every
piece to the sender task cost a loop turn per piece: at 50 talking guilds, 30-50 ms before the
server had the silence that ends a turn.) One sender at a time keeps the audio in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mistralai.extra.realtime import RealtimeConnection

# Keeps each append well under WebSocket message limits even after a slow connect let audio pile up.
MAX_APPEND_BYTES = 64 * 1024


@dataclass(slots=True)
class Utterance:
    """Audio received so far, shared by the pump (writer) and the realtime session (sender)."""

    buffer: bytearray = field(default_factory=bytearray)
    ended: bool = False
    source_error: BaseException | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    deadlines: list[asyncio.Timeout] = field(default_factory=list)
    end_reason: str | None = None
    """Who ended the utterance: the server's turn.end reason, or "local" (the audio ran out)."""
    pump: asyncio.Task[None] | None = None
    stop_requested: bool = False
    connection: RealtimeConnection | None = None
    """The open realtime session's socket, once its sender runs (None before and after)."""
    sent: int = 0  # bytes of ``buffer`` that session was sent
    sending: bool = False  # a send is under way (the pump's or the sender's)

    def stop(self, reason: str) -> None:
        """The server ended the turn: stop pulling audio (cancels a pending ``__anext__``)."""
        if self.end_reason is not None:
            return
        self.end_reason = reason
        self.stop_requested = True
        if self.pump is not None:
            self.pump.cancel()

    def finish(self, final_timeout: float) -> None:
        if self.end_reason is None:
            self.end_reason = "local"
        self.ended = True
        self.changed.set()
        # From here the realtime session has ``final_timeout`` to deliver transcription.done.
        loop = asyncio.get_running_loop()
        for deadline in self.deadlines:
            deadline.reschedule(loop.time() + final_timeout)

    async def pulled(self, chunk: bytes) -> None:
        """The pump pulled ``chunk``: buffered, and sent now if a session is open and idle."""
        self.buffer.extend(chunk)
        if self.connection is not None and not self.sending:
            # A broken socket is the session's to find out (its sender fails the same way),
            # not an error of the caller's audio.
            with contextlib.suppress(Exception):
                await self.send_buffered(self.connection)
        if self.sent < len(self.buffer):
            self.changed.set()  # for the sender: nothing is open yet, or its send is under way

    async def send_buffered(self, connection: RealtimeConnection) -> None:
        """Send what the session has not had yet, unless a send is under way (it takes it along)."""
        if self.sending:
            return
        self.sending = True
        try:
            while self.sent < len(self.buffer):
                chunk = bytes(self.buffer[self.sent:self.sent + MAX_APPEND_BYTES])
                # Counted first: the socket has the bytes before send_audio awaits anything (a
                # cancel there must not send them twice).
                self.sent += len(chunk)
                await connection.send_audio(chunk)
        finally:
            self.sending = False

    async def send_all(self, connection: RealtimeConnection) -> None:
        """The session's sender: what piled up before it ran, then the rest until the audio ends
        (the pump sends most of it itself meanwhile), then flush and end."""
        self.sent, self.connection = 0, connection
        try:
            while True:
                await self.send_buffered(connection)
                if self.ended and self.sent == len(self.buffer) and not self.sending:
                    break
                await self.changed.wait()
                self.changed.clear()
        finally:
            self.connection = None
        await connection.flush_audio()
        await connection.end_audio()
