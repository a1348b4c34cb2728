"""Who talks on which SSRC: the SPEAKING map, each admitted speaker's decode state, packets that
beat their SPEAKING event (orphans), and consent admission.

Everything here is reader-thread data guarded by the receiver's lock; this module only keeps the
books. It never decodes: a speaker that leaves the table is handed back to the receiver, which
flushes (decodes the jitter tail) or discards it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Protocol

from bot.voice.jitter import JitterBuffer
from bot.voice.stats import ReceiveStats

ORPHAN_SSRCS = 8  # SSRCs whose packets arrived before their SPEAKING event, kept briefly
ORPHAN_PACKETS = 25  # per SSRC: 0.5 s, far more than the websocket/UDP race needs

# Whether a user's audio may be heard at all (recording consent). Called on the reader thread, once
# per SSRC and again on ``readmit()``, never per packet: it must be a cheap, non-blocking lookup.
Admission = Callable[[int], bool]


class Decoder(Protocol):
    def decode(self, packet: bytes) -> bytes: ...
    def conceal(self, next_packet: bytes | None = None) -> bytes: ...
    def close(self) -> None: ...


class Resampler(Protocol):
    def process(self, pcm48k_stereo: bytes) -> bytes: ...
    def drain(self, pcm48k_stereo: bytes) -> bytes:
        """``process``, plus all the output held back, ready for a new stream (a talk spurt ended)."""
        ...
    def flush(self) -> bytes: ...


class Speaker:
    """One admitted SSRC's decode state."""

    __slots__ = ("decoder", "end_ts", "held", "held_epoch", "jitter", "resampler", "ssrc", "user_id")

    def __init__(self, ssrc: int, user_id: int, decoder: Decoder, resampler: Resampler, jitter: JitterBuffer):
        self.ssrc = ssrc
        self.user_id = user_id
        self.decoder = decoder
        self.resampler = resampler
        self.jitter = jitter
        self.end_ts = 0  # RTP timestamp just after the last frame fed to the resampler
        # (seq, ts, DAVE payload) of frames whose key is not known yet (see receiver._hold).
        self.held: list[tuple[int, int, bytes]] | None = None
        self.held_epoch: object = None  # the DAVE epoch they failed in


class Speakers:
    """The SSRC → user map and the per-SSRC state of one voice connection."""

    def __init__(
        self,
        stats: ReceiveStats,
        *,
        decoder_factory: Callable[[], Decoder],
        resampler_factory: Callable[[], Resampler],
        jitter_depth: int,
    ) -> None:
        self.decoder_factory = decoder_factory
        self.resampler_factory = resampler_factory
        self.jitter_depth = jitter_depth
        self._stats = stats
        self.users: dict[int, int] = {}  # SSRC -> user, from SPEAKING (op 5)
        self.active: dict[int, Speaker] = {}  # the per-packet lookup
        self.orphans: dict[int, deque[bytes]] = {}
        self.admit: Admission | None = None
        self.refused: dict[int, int] = {}  # SSRC -> user whose packets are dropped unopened
        # Per user: packets dropped for consent before transport decryption, DAVE or Opus decode.
        self.refused_packets: dict[int, int] = {}

    def open(self, ssrc: int, data: bytes, own_ssrc: object) -> tuple[Speaker, deque[bytes] | None] | None:
        """The first packet of an SSRC with no speaker: a new speaker plus the early packets to
        replay before ``data``, or None when the packet is not to be heard (ours, refused, or no
        SPEAKING yet: then it is kept as an orphan)."""
        refused = self.refused.get(ssrc)
        if refused is not None:
            self.count_refused(refused, 1)
            return None
        if ssrc == own_ssrc:
            self._stats.own_ssrc += 1
            return None
        user_id = self.users.get(ssrc)
        if user_id is None:
            self._stats.unknown_ssrc += 1
            orphans = self.orphans.get(ssrc)
            if orphans is None and len(self.orphans) < ORPHAN_SSRCS:
                orphans = self.orphans[ssrc] = deque(maxlen=ORPHAN_PACKETS)
            if orphans is not None:
                orphans.append(data)
            return None
        if self.admit is not None and not self.admit(user_id):
            self.refused[ssrc] = user_id
            orphans = self.orphans.pop(ssrc, None)
            self.count_refused(user_id, 1 + (len(orphans) if orphans else 0))
            return None
        speaker = Speaker(
            ssrc, user_id, self.decoder_factory(), self.resampler_factory(), JitterBuffer(depth=self.jitter_depth)
        )
        self.active[ssrc] = speaker
        return speaker, self.orphans.pop(ssrc, None)

    def map(self, ssrc: int, user_id: int) -> list[Speaker]:
        """SPEAKING (op 5): ``ssrc`` is ``user_id``'s. Returns the speakers this ends, to be flushed."""
        if self.users.get(ssrc) == user_id:
            return []
        ended: list[Speaker] = []
        for old_ssrc in [s for s, u in self.users.items() if u == user_id]:
            del self.users[old_ssrc]  # the user's client reconnected with a new SSRC
            ended += self._end(old_ssrc)
        ended += self._end(ssrc)  # the SSRC moved to another user
        self.users[ssrc] = user_id
        return ended

    def forget(self, user_id: int) -> tuple[list[Speaker], bool]:
        """CLIENT_DISCONNECT (op 13): the speakers to flush, and whether the user had any SSRC."""
        ssrcs = [s for s, u in self.users.items() if u == user_id]
        ended: list[Speaker] = []
        for ssrc in ssrcs:
            del self.users[ssrc]
            ended += self._end(ssrc)
            self.orphans.pop(ssrc, None)
        return ended, bool(ssrcs)

    def refuse_now_refused(self) -> list[Speaker]:
        """The admission answers changed: forget past refusals and return the speakers now
        refused, removed and marked refused (to be discarded unheard)."""
        self.refused.clear()
        admit = self.admit
        if admit is None:
            return []
        dropped = [speaker for speaker in self.active.values() if not admit(speaker.user_id)]
        for speaker in dropped:
            del self.active[speaker.ssrc]
            self.refused[speaker.ssrc] = speaker.user_id
        return dropped

    def take_all(self) -> list[Speaker]:
        """Receiving stops: every speaker, to be flushed; orphans and refusals forgotten."""
        speakers = list(self.active.values())
        self.active.clear()
        self.orphans.clear()
        self.refused.clear()
        return speakers

    def count_refused(self, user_id: int, packets: int) -> None:
        self.refused_packets[user_id] = self.refused_packets.get(user_id, 0) + packets

    def _end(self, ssrc: int) -> list[Speaker]:
        self.refused.pop(ssrc, None)
        speaker = self.active.pop(ssrc, None)
        return [speaker] if speaker is not None else []
