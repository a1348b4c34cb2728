"""Reader thread → event loop: finished 16 kHz chunks cross threads in batches.

The reader thread appends to a deque; one ``loop.call_soon_threadsafe`` wakes the loop per batch
(only when none is pending), and the loop then hands every queued chunk to the ``SpeechSink``.
A busy loop therefore costs one wakeup however many packets arrive meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Protocol

from bot.voice.stats import RateLimitedLog


class SpeechSink(Protocol):
    """Receives each speaker's audio on the event loop."""

    def on_speaker_frame(self, user_id: int, pcm16k: bytes, rtp_timestamp: int) -> None:
        """``pcm16k``: 16 kHz mono int16, any whole number of samples (soxr emits in blocks).
        ``rtp_timestamp``: the 48 kHz RTP clock at the chunk's first sample (ignoring the
        resampler's constant group delay); consecutive chunks advance by 3 ticks per sample,
        larger jumps are pauses in the speaker's transmission."""
        ...

    def on_speaker_gone(self, user_id: int) -> None:
        """The user left the channel (CLIENT_DISCONNECT) or receiving stopped; no more frames follow
        unless the user speaks again."""
        ...


class Handoff:
    """One connection's outbox: ``post`` on the reader thread (under the receiver's lock),
    delivery on the loop."""

    def __init__(self, *, batch_interval: float, log: RateLimitedLog) -> None:
        """``batch_interval``: after the first chunk of a batch wakes the loop, delivery waits this
        long so later chunks ride along: at most one cross-thread wakeup per interval however many
        speakers talk, for that much added latency. 0 delivers on the wakeup itself."""
        self._batch_interval = batch_interval
        self._rlog = log
        self._outbox: deque[tuple[int, bytes | None, int]] = deque()
        self._scheduled = False
        self.sink: SpeechSink | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def pending(self) -> int:
        """Chunks and departures posted but not yet delivered."""
        return len(self._outbox)

    def post(self, user_id: int, pcm: bytes | None, ts: int) -> bool:
        """Queue a chunk (``pcm``) or a departure (None); False if the loop is closed, so nobody
        is left to deliver to."""
        self._outbox.append((user_id, pcm, ts & 0xFFFFFFFF))
        if not self._scheduled and self.loop is not None:
            self._scheduled = True
            try:
                self.loop.call_soon_threadsafe(self._wake)
            except RuntimeError:
                return False
        return True

    def _wake(self) -> None:
        if self._batch_interval > 0 and self.loop is not None:
            self.loop.call_later(self._batch_interval, self.deliver)
        else:
            self.deliver()

    def deliver(self) -> None:
        """Hand everything queued to the sink (loop thread)."""
        self._scheduled = False
        outbox, sink = self._outbox, self.sink
        while outbox:
            user_id, pcm, ts = outbox.popleft()
            if sink is None:
                continue
            try:
                if pcm is None:
                    sink.on_speaker_gone(user_id)
                else:
                    sink.on_speaker_frame(user_id, pcm, ts)
            except Exception:
                self._rlog(logging.ERROR, "sink", "Speech sink raised", exc_info=True)
