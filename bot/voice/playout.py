"""When to start playing a reply so it never runs dry mid-sentence: the output side's jitter buffer.

Speech arrives in TTS chunks, at about real time when the TTS is busy, with network jitter; the
player sends a packet every 20 ms whatever happens. Started on the first packet, playback ran
dry within a sentence whenever a chunk came late (issue 13: ~200 ms of holes in a first
sentence). So each run of playback (a *segment*: a reply, or its restart after the stream ran
dry for long) starts when its packets, extrapolated at real time, are not expected to run out:

    start at  (first packet's time - 20 ms * (packets of its chunk - 1))  +  window  -  credit

The first term anchors the stream to real time, packet p being due at anchor + 20 ms * p. The
window is how late a packet may come relative to that schedule: learned from the last segments
(the worst packet of each that arrived after its start; the second worst segment, plus a margin),
and never less than the first chunk plus ``DEFAULT_DELAY`` until eight segments say so. The
credit needs no knowledge of the TTS's speed: when audio comes faster than real time, later
packets run ahead of the schedule, and the lead beyond what jitter explains (``SPREAD``) is taken
off the wait, down to starting at once.

The window includes the TTS's chunking: a 62.5 ms chunk releases three 20 ms packets at once,
and a packet that straddles two chunks waits for the second, so with a TTS at exactly real time
and +-40 ms jitter per chunk a packet can be due ~58 ms after the first packet's real-time
schedule. ``DEFAULT_DELAY`` is 55 ms of that; the reader waits up to 5 ms more for a late packet
(``opus_source.UNDERRUN_WAIT``). It is what the prebuffer costs first audio: issue 13 allows 60 ms
over the old start on the first packet, and the timer and the player thread's start add ~5 ms.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass

FRAME = 0.020
DEFAULT_DELAY = 0.055
MARGIN = 0.003  # player-thread and FFmpeg scheduling on top of the learned lateness
# A TTS later than this is stalling, not jittering: rebuffer then rather than make every reply wait
# (at most ~110 ms after the first packet of a 62.5 ms chunk).
MAX_WINDOW = 0.150
HISTORY = 8  # segments remembered; the window follows a calmer network after this many
BURST = 0.005  # packets ready this close to the first came with it (one TTS chunk)
# Jitter alone moves a chunk's packets up to this much ahead of real time (+-40 ms, plus up to a
# frame for where the chunk ends within a packet); only a lead beyond it means a faster TTS.
SPREAD = 0.060
# A stream that ran dry for longer than this starts a new segment (rebuffered, not learned from):
# the next sentence's speech was late, which is TTS latency rather than jitter.
REJOIN = 0.080


class PlayoutHistory:
    """What the last segments needed; one per guild, shared by its replies. Thread-safe."""

    def __init__(self, *, default_delay: float = DEFAULT_DELAY, history: int = HISTORY) -> None:
        self._lock = threading.Lock()
        self._needs: deque[float] = deque(maxlen=history)
        self.default_delay = default_delay

    def window(self, first_burst: int) -> float:
        """How late, after the first chunk's real-time schedule, a packet may come. The second
        worst of the remembered segments (one stall, e.g. a loaded machine, is forgiven), never
        below the default until the history is full (a few lucky segments prove nothing)."""
        default = FRAME * max(0, first_burst - 1) + self.default_delay
        with self._lock:
            needs = sorted(self._needs)
            full = len(needs) == self._needs.maxlen
        learned = needs[-2] + MARGIN if len(needs) >= 2 else default
        return min(MAX_WINDOW, learned if full else max(default, learned))

    def learn(self, need: float) -> None:
        with self._lock:
            self._needs.append(min(MAX_WINDOW, max(0.0, need)))

    @property
    def needs(self) -> list[float]:
        with self._lock:
            return list(self._needs)


@dataclass(slots=True)
class PlayoutSegment:
    """One run of playback. ``packet_ready`` from the FFmpeg reader thread; the rest from the player
    thread or the loop, under the owner's lock."""

    history: PlayoutHistory
    count: int = 0
    first_at: float | None = None
    burst: int = 0  # packets that came with the first (its TTS chunk)
    anchor: float = math.inf  # min(ready_p - FRAME * p) before the start
    credit: float | None = None  # fixed at the start
    worst: float = -math.inf  # max(ready_p - FRAME * p) over packets that came after the start

    @property
    def first_anchor(self) -> float:
        assert self.first_at is not None
        return self.first_at - FRAME * max(0, self.burst - 1)

    def packet_ready(self, at: float, *, learn: bool = True) -> None:
        """``learn=False`` for a packet that only padding released (the speech had run out):
        its lateness says nothing about the TTS."""
        value = at - FRAME * self.count
        self.count += 1
        if self.first_at is None:
            self.first_at = at
        if self.credit is None:
            if at - self.first_at <= BURST:
                self.burst += 1
            self.anchor = min(self.anchor, value)
        elif learn:
            self.worst = max(self.worst, value)

    def _credit(self) -> float:
        # Packets ahead of the real-time schedule set by the first chunk shorten the wait, but only
        # beyond what jitter alone can explain: one early chunk says nothing about the next.
        return max(0.0, self.first_anchor - self.anchor - SPREAD)

    def start_at(self) -> float | None:
        """When playback may start; ``None`` before the first packet."""
        if self.count == 0:
            return None
        credit = self.credit if self.credit is not None else self._credit()
        return self.first_anchor + self.history.window(self.burst) - credit

    def started(self) -> None:
        if self.credit is None and self.count:
            self.credit = self._credit()

    def close(self) -> None:
        """The segment is over (played out, interrupted, or ran dry for long): learn from it."""
        if self.credit is not None and self.worst > -math.inf:
            # The window that would have covered every packet that came after the start.
            self.history.learn(self.worst - self.first_anchor + self.credit)
            self.worst = -math.inf
