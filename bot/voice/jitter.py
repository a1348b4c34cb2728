"""Per-speaker jitter buffer over 16-bit RTP sequence numbers.

In-order packets (the overwhelming majority) are released immediately through a fast path that
allocates nothing. A packet that arrives ahead of the expected sequence number is held in a
preallocated ring; once the newest held packet is ``depth`` packets past the hole, the hole is
declared lost and reported for concealment, so a loss costs at most ``depth - 1`` frames of extra
latency (40 ms at the default 3) and reordering within that window is repaired.

Timeline: every released entry carries an RTP timestamp; a concealed frame gets the previous
packet's timestamp + 960 (one 20 ms frame), so received + concealed frames cover the true
timeline. Gaps of ``window`` packets or more (a reconnect, a long stall, a sender restart) are not
concealed: the buffer resynchronises on the new packet and the jump stays visible in timestamps.

Not thread-safe: one instance per speaker, used from the socket reader thread only.
"""

from __future__ import annotations

from typing import Final

from bot.voice.rtp import SAMPLES_PER_FRAME

ADMIT: Final = 0
DUPLICATE: Final = 1
LATE: Final = 2

IN_ORDER: Final = 0  # push(): the caller plays this packet itself; nothing was queued
RELEASED: Final = 1  # push(): the caller plays ``ready`` (possibly empty)

# ``ready`` entries are (rtp_timestamp, payload, fec_source): payload None means "conceal one
# frame", fec_source is the packet after the hole when it is at hand (Opus in-band FEC).
ReadyEntry = tuple[int, bytes | None, bytes | None]


class JitterBuffer:
    __slots__ = (
        "_ahead", "_depth", "_held", "_last_ts", "_mask", "_next", "_payloads", "_seen", "_seqs",
        "_stamps", "concealed", "duplicates", "late", "ready", "resyncs", "window",
    )  # fmt: skip

    def __init__(self, *, depth: int = 3, window: int = 16) -> None:
        if window & (window - 1) or window < 4:
            raise ValueError("window must be a power of two >= 4")
        if not 1 <= depth < window:
            raise ValueError("depth must be in [1, window)")
        self._depth = depth
        self.window = window
        self._mask = window - 1
        self._payloads: list[bytes | None] = [None] * window
        self._stamps = [0] * window
        self._seqs = [-1] * window  # seq held in the slot, -1 if empty
        self._seen = [-1] * window  # seq last released from the slot as a real packet
        self._next = -1  # next sequence number to release; -1 before the first packet
        self._held = 0
        self._ahead = 0  # offset of the furthest held packet from _next
        self._last_ts = 0
        self.ready: list[ReadyEntry] = []
        self.concealed = 0
        self.duplicates = 0
        self.late = 0
        self.resyncs = 0

    @property
    def held(self) -> int:
        return self._held

    def admit(self, seq: int) -> int:
        """``ADMIT``, ``DUPLICATE`` or ``LATE`` for this sequence number, without changing state.

        Asked before the DAVE layer: davey refuses a replayed nonce, so a duplicate must be caught
        here to be counted as one, and a late packet is not worth decrypting.
        """
        nxt = self._next
        if nxt < 0:
            return ADMIT
        d = (seq - nxt) & 0xFFFF
        if d < 0x8000:
            if d < self.window and self._held and self._seqs[seq & self._mask] == seq:
                self.duplicates += 1
                return DUPLICATE
            return ADMIT
        if 0x10000 - d > 4 * self.window:
            return ADMIT  # far behind: a restarted sender, handled as a resync by push()
        if self._seen[seq & self._mask] == seq:
            self.duplicates += 1
            return DUPLICATE
        self.late += 1
        return LATE

    def push(self, seq: int, timestamp: int, payload: bytes) -> int:
        """Take an admitted packet. ``IN_ORDER``: play it now, ``ready`` is untouched.
        ``RELEASED``: play the entries of ``ready`` in order (this packet may be among them)."""
        nxt = self._next
        if nxt == seq and not self._held:
            self._next = (seq + 1) & 0xFFFF
            self._seen[seq & self._mask] = seq
            self._last_ts = timestamp
            return IN_ORDER
        if nxt < 0:
            self._start(seq, timestamp)
            return IN_ORDER
        ready = self.ready
        ready.clear()
        d = (seq - nxt) & 0xFFFF
        if d >= self.window:  # a jump too far to conceal, forwards or (restart) backwards
            self._drain(force=True)
            self.resyncs += 1
            self._start(seq, timestamp)
            ready.append((timestamp, payload, None))
            return RELEASED
        slot = seq & self._mask
        self._payloads[slot] = payload
        self._stamps[slot] = timestamp
        self._seqs[slot] = seq
        self._held += 1
        self._ahead = max(self._ahead, d)
        self._drain(force=False)
        return RELEASED

    def flush(self) -> list[ReadyEntry]:
        """Release everything held, concealing holes between held packets (end of a stream)."""
        self.ready.clear()
        self._drain(force=True)
        return self.ready

    def _start(self, seq: int, timestamp: int) -> None:
        self._next = (seq + 1) & 0xFFFF
        self._seen[seq & self._mask] = seq
        self._last_ts = timestamp

    def _drain(self, *, force: bool) -> None:
        mask, seqs, payloads, ready = self._mask, self._seqs, self._payloads, self.ready
        nxt = self._next
        while self._held:
            slot = nxt & mask
            if seqs[slot] == nxt:
                ts = self._stamps[slot]
                ready.append((ts, payloads[slot], None))
                self._seen[slot] = nxt
                seqs[slot] = -1
                payloads[slot] = None
                self._held -= 1
                self._last_ts = ts
            elif force or self._ahead >= self._depth:
                after = (nxt + 1) & 0xFFFF
                fec = payloads[after & mask] if seqs[after & mask] == after else None
                self._last_ts = (self._last_ts + SAMPLES_PER_FRAME) & 0xFFFFFFFF
                ready.append((self._last_ts, None, fec))
                self.concealed += 1
            else:
                break
            nxt = (nxt + 1) & 0xFFFF
            self._ahead -= 1
        if not self._held:
            self._ahead = 0
        self._next = nxt
