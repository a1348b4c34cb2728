"""UDP packets → per-speaker 16 kHz mono PCM, attached to discord.py's voice connection.

Threading (discord.py 2.7.1 ``voice_state.py``): ``SocketReader`` is one daemon thread per
``VoiceConnectionState`` that calls every registered listener with each datagram. All heavy work
(transport decrypt, DAVE decrypt, jitter, Opus decode, downmix/resample) runs there, off the event
loop. Finished chunks go into a deque; one ``loop.call_soon_threadsafe`` wakes the loop per batch
(only when none is pending), the loop lets the batch fill for ``batch_interval`` and then hands
every queued chunk to the ``SpeechSink``.

Reconnects: the reader thread and its listener list survive ``disconnect(cleanup=False)`` /
``soft_disconnect`` (they only ``pause()``; ``_create_socket`` resumes when listeners exist), so
the listener stays registered. What changes is the secret key, mode, our SSRC and the DAVE
session; all are read from the connection per packet (an identity check for the key), so
receiving resumes with the first packet of the new session. The websocket hook also re-registers
the listener on every ``SESSION_DESCRIPTION`` (op 4) as a guard; registering is idempotent here.

Consent: an ``admit`` predicate is asked once per SSRC (again after ``readmit()``); a refused
user's packets are counted and dropped before transport decryption, so their audio is never
decrypted, decoded or delivered.

A shared lock serialises the reader thread's per-packet work with the loop-side bookkeeping
(SPEAKING / CLIENT_DISCONNECT / stop), which keeps each speaker's frames strictly before its
``on_speaker_gone``. It is uncontended except for those rare events.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from bot.audio.opus import OpusDecodeError, OpusDecoder
from bot.audio.resample import DownmixResampler
from bot.voice.dave import DaveConnection, DaveFrameDecryptor
from bot.voice.jitter import IN_ORDER, JitterBuffer
from bot.voice.rtp import (
    IP_DISCOVERY,
    NOT_RTP,
    OPUS_PAYLOAD_TYPE,
    OTHER_PAYLOAD,
    RTCP,
    SAMPLES_PER_FRAME,
    classify,
    unpack_seq_ts_ssrc,
)  # fmt: skip
from bot.voice.stats import RateLimitedLog, ReceiveStats
from bot.voice.transport import MalformedPacketError, TransportAuthError, TransportDecryptor, make_decryptor

_log = logging.getLogger(__name__)

_ORPHAN_SSRCS = 8  # SSRCs whose packets arrived before their SPEAKING event, kept briefly
_ORPHAN_PACKETS = 25  # per SSRC: 0.5 s, far more than the websocket/UDP race needs


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


# Whether a user's audio may be heard at all (recording consent). Called on the reader thread, once
# per SSRC and again on ``readmit()``, never per packet: it must be a cheap, non-blocking lookup.
Admission = Callable[[int], bool]


class Decoder(Protocol):
    def decode(self, packet: bytes) -> bytes: ...
    def conceal(self, next_packet: bytes | None = None) -> bytes: ...
    def close(self) -> None: ...


class Resampler(Protocol):
    def process(self, pcm48k_stereo: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


class VoiceConnection(DaveConnection, Protocol):
    """The attributes of discord.py's ``VoiceConnectionState`` the receiver reads."""

    secret_key: Any
    mode: Any
    ssrc: Any

    def add_socket_listener(self, callback: Callable[[bytes], Any]) -> None: ...
    def remove_socket_listener(self, callback: Callable[[bytes], Any]) -> None: ...


class _Speaker:
    __slots__ = ("decoder", "end_ts", "jitter", "resampler", "ssrc", "user_id")

    def __init__(self, ssrc: int, user_id: int, decoder: Decoder, resampler: Resampler, jitter: JitterBuffer):
        self.ssrc = ssrc
        self.user_id = user_id
        self.decoder = decoder
        self.resampler = resampler
        self.jitter = jitter
        self.end_ts = 0  # RTP timestamp just after the last frame fed to the resampler


class VoiceReceiver:
    """Owns per-speaker state and the SSRC → user map for one voice connection."""

    def __init__(
        self,
        connection: VoiceConnection,
        *,
        decoder_factory: Callable[[], Decoder] = OpusDecoder,
        resampler_factory: Callable[[], Resampler] = DownmixResampler,
        jitter_depth: int = 3,
        batch_interval: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``batch_interval``: after the first chunk of a batch wakes the loop, delivery waits this
        long so later chunks ride along: at most one cross-thread wakeup per interval however many
        speakers talk, for that much added latency. The default 0 delivers on the wakeup itself:
        every ms here delays the end of a turn and a barge-in, and chunks that arrive while the
        loop is busy still ride along with the pending wakeup."""
        self._connection = connection
        self._decoder_factory = decoder_factory
        self._resampler_factory = resampler_factory
        self._jitter_depth = jitter_depth
        self._batch_interval = batch_interval
        self.stats = ReceiveStats()
        self._rlog = RateLimitedLog(_log, clock=clock)
        self._dave = DaveFrameDecryptor(connection, self.stats.dave, log=self._rlog)
        self._lock = threading.Lock()
        self._ssrc_users: dict[int, int] = {}
        self._speakers: dict[int, _Speaker] = {}
        self._orphans: dict[int, deque[bytes]] = {}
        self._admit: Admission | None = None
        self._refused: dict[int, int] = {}  # SSRC -> user whose packets are dropped unopened
        # Per user: packets dropped for consent before transport decryption, DAVE or Opus decode.
        self.refused_packets: dict[int, int] = {}
        self._key_source: object = None
        self._transport: TransportDecryptor | None = None
        self._outbox: deque[tuple[int, bytes | None, int]] = deque()
        self._scheduled = False
        self._active = False
        self._sink: SpeechSink | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ----------------------------------------------------------------- loop side
    @property
    def receiving(self) -> bool:
        return self._active

    def user_for_ssrc(self, ssrc: int) -> int | None:
        return self._ssrc_users.get(ssrc)

    def start(
        self, sink: SpeechSink, loop: asyncio.AbstractEventLoop | None = None, *, admit: Admission | None = None
    ) -> None:
        """Begin delivering audio to ``sink`` (call on the event loop that should receive it).

        ``admit``: users it refuses are never decrypted, decoded or delivered (None admits all)."""
        with self._lock:
            self._sink = sink
            self._loop = loop or asyncio.get_running_loop()
            self._admit = admit
            self._refused.clear()
            self._active = True
        self._register()

    def readmit(self) -> None:
        """The admission answers changed: drop refused speakers at once (their undecoded packets
        unheard), and ask again for every SSRC on its next packet."""
        with self._lock:
            admit = self._admit
            self._refused.clear()
            if admit is None:
                return
            for ssrc, speaker in list(self._speakers.items()):
                if not admit(speaker.user_id):
                    self._discard(ssrc)

    def stop(self) -> None:
        """Stop receiving: unregister, flush every speaker, deliver the tails and ``on_speaker_gone``."""
        self._connection.remove_socket_listener(self.on_packet)
        with self._lock:
            self._active = False
            for ssrc in list(self._speakers):
                self._retire(ssrc, gone=True)
            self._orphans.clear()
            self._refused.clear()
        self._deliver()
        self._sink = None

    def map_ssrc(self, ssrc: int, user_id: int) -> None:
        """SPEAKING (op 5): ``ssrc`` belongs to ``user_id``."""
        with self._lock:
            if self._ssrc_users.get(ssrc) == user_id:
                return
            for old_ssrc in [s for s, u in self._ssrc_users.items() if u == user_id]:
                del self._ssrc_users[old_ssrc]  # the user's client reconnected with a new SSRC
                self._retire(old_ssrc, gone=False)
                self._refused.pop(old_ssrc, None)
            self._retire(ssrc, gone=False)  # the SSRC moved to another user
            self._refused.pop(ssrc, None)
            self._ssrc_users[ssrc] = user_id

    def forget_user(self, user_id: int) -> None:
        """CLIENT_DISCONNECT (op 13): drop the user's SSRCs and state, then tell the sink."""
        with self._lock:
            ssrcs = [s for s, u in self._ssrc_users.items() if u == user_id]
            for ssrc in ssrcs:
                del self._ssrc_users[ssrc]
                self._retire(ssrc, gone=False)
                self._orphans.pop(ssrc, None)
                self._refused.pop(ssrc, None)
            if ssrcs and self._active:
                self._post(user_id, None, 0)

    async def on_voice_ws_message(self, ws: object, msg: dict[str, Any]) -> None:
        """The voice websocket hook (``VoiceConnectionState(hook=...)``), called for JSON events
        after discord.py handled them."""
        op = msg.get("op")
        data = msg.get("d")
        if not isinstance(data, dict):
            return
        try:
            if op == 5 and "user_id" in data and "ssrc" in data:
                self.map_ssrc(int(data["ssrc"]), int(data["user_id"]))
            elif op == 13 and "user_id" in data:
                self.forget_user(int(data["user_id"]))
            elif op == 4 and self._active:
                self._register()  # every (re)connect ends with SESSION_DESCRIPTION
        except (TypeError, ValueError):
            self._rlog(logging.WARNING, f"hook:{op}", "Ignoring malformed voice op %s: %r", op, data)

    def _register(self) -> None:
        self._connection.remove_socket_listener(self.on_packet)
        self._connection.add_socket_listener(self.on_packet)

    def _wake(self) -> None:
        if self._batch_interval > 0 and self._loop is not None:
            self._loop.call_later(self._batch_interval, self._deliver)
        else:
            self._deliver()

    def _deliver(self) -> None:
        self._scheduled = False
        outbox, sink = self._outbox, self._sink
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

    # ----------------------------------------------------------------- reader thread
    def on_packet(self, data: bytes) -> None:
        """Socket listener: runs in discord.py's SocketReader thread for every datagram."""
        try:
            with self._lock:
                if self._active:
                    self._handle(data)
        except Exception:
            # Our bug must not reach SocketReader, which would log a traceback per packet.
            self.stats.internal_errors += 1
            self._rlog(logging.ERROR, "internal", "Voice receive failed on a packet", exc_info=True)

    def _handle(self, data: bytes) -> None:
        stats = self.stats
        stats.packets += 1
        if len(data) < 20 or (data[0] & 0xC0) != 0x80 or (data[1] & 0x7F) != OPUS_PAYLOAD_TYPE:
            self._count_skipped(data)
            return
        seq, ts, ssrc = unpack_seq_ts_ssrc(data, 2)
        speaker = self._speakers.get(ssrc)
        if speaker is None:
            refused = self._refused.get(ssrc)
            if refused is not None:
                self._count_refused(refused, 1)
                return
            speaker = self._new_speaker(ssrc, data)
            if speaker is None:
                return
        self._process(speaker, data, seq, ts)

    def _process(self, speaker: _Speaker, data: bytes, seq: int, ts: int) -> None:
        stats = self.stats
        jitter = speaker.jitter
        verdict = jitter.admit(seq)
        if verdict:
            if verdict == 1:
                stats.duplicates += 1
            else:
                stats.dropped_late += 1
            return
        connection = self._connection
        if connection.secret_key is not self._key_source:
            self._rekey()
        transport = self._transport
        if transport is None:
            stats.transport_failures += 1
            return
        try:
            payload = transport.decrypt(data)
        except TransportAuthError:
            stats.transport_failures += 1
            self._rlog(logging.WARNING, "transport", "Voice packet failed authentication (ssrc %s)",
                       speaker.ssrc)
            return
        except MalformedPacketError:
            stats.truncated += 1
            return
        stats.decrypted += 1
        if not payload:
            stats.truncated += 1
            return
        opus = self._dave.open(speaker.user_id, payload)
        if opus is None:
            return
        resyncs = jitter.resyncs
        if jitter.push(seq, ts, opus) == IN_ORDER:
            self._play(speaker, ts, opus)
            return
        stats.resyncs += jitter.resyncs - resyncs
        for entry_ts, packet, fec in jitter.ready:
            if packet is None:
                self._conceal(speaker, entry_ts, fec)
            else:
                self._play(speaker, entry_ts, packet)

    def _play(self, speaker: _Speaker, ts: int, opus: bytes) -> None:
        try:
            pcm = speaker.decoder.decode(opus)
        except OpusDecodeError:
            self.stats.decode_errors += 1
            self._conceal(speaker, ts, None)  # keep the timeline: a corrupt frame is a lost frame
            return
        self.stats.decoded += 1
        speaker.end_ts = end = ts + SAMPLES_PER_FRAME
        out = speaker.resampler.process(pcm)
        if out:
            self._post(speaker.user_id, out, end - (len(out) >> 1) * 3)

    def _conceal(self, speaker: _Speaker, ts: int, fec: bytes | None) -> None:
        try:
            pcm = speaker.decoder.conceal(fec)
        except OpusDecodeError:
            self.stats.decode_errors += 1
            return
        self.stats.concealed += 1
        speaker.end_ts = end = ts + SAMPLES_PER_FRAME
        out = speaker.resampler.process(pcm)
        if out:
            self._post(speaker.user_id, out, end - (len(out) >> 1) * 3)

    def _post(self, user_id: int, pcm: bytes | None, ts: int) -> None:
        self._outbox.append((user_id, pcm, ts & 0xFFFFFFFF))
        if pcm is not None:
            self.stats.frames_out += 1
        if not self._scheduled and self._loop is not None:
            self._scheduled = True
            try:
                self._loop.call_soon_threadsafe(self._wake)
            except RuntimeError:  # the loop is closed: nobody is left to deliver to
                self._active = False

    def _new_speaker(self, ssrc: int, data: bytes) -> _Speaker | None:
        if ssrc == self._connection.ssrc:
            self.stats.own_ssrc += 1
            return None
        user_id = self._ssrc_users.get(ssrc)
        if user_id is None:
            self.stats.unknown_ssrc += 1
            orphans = self._orphans.get(ssrc)
            if orphans is None and len(self._orphans) < _ORPHAN_SSRCS:
                orphans = self._orphans[ssrc] = deque(maxlen=_ORPHAN_PACKETS)
            if orphans is not None:
                orphans.append(data)
            return None
        if self._admit is not None and not self._admit(user_id):
            self._refused[ssrc] = user_id
            orphans = self._orphans.pop(ssrc, None)
            self._count_refused(user_id, 1 + (len(orphans) if orphans else 0))
            return None
        speaker = _Speaker(
            ssrc, user_id, self._decoder_factory(), self._resampler_factory(),
            JitterBuffer(depth=self._jitter_depth),
        )  # fmt: skip
        self._speakers[ssrc] = speaker
        orphans = self._orphans.pop(ssrc, None)
        if orphans:  # packets that beat their SPEAKING event over the websocket
            for early in orphans:
                seq, ts, _ = unpack_seq_ts_ssrc(early, 2)
                self._process(speaker, early, seq, ts)
        return speaker

    def _rekey(self) -> None:
        connection = self._connection
        key = connection.secret_key
        self._key_source = key
        self._transport = None
        if key:  # discord.py's MISSING sentinel and None are falsy
            try:
                self._transport = make_decryptor(connection.mode, key)
            except ValueError:
                self._rlog(logging.ERROR, "rekey", "Cannot decrypt voice mode %r", connection.mode,
                           exc_info=True)

    def _count_refused(self, user_id: int, packets: int) -> None:
        self.refused_packets[user_id] = self.refused_packets.get(user_id, 0) + packets

    def _count_skipped(self, data: bytes) -> None:
        kind = classify(data)
        stats = self.stats
        if kind == RTCP:
            stats.rtcp += 1
        elif kind == IP_DISCOVERY:
            stats.ip_discovery += 1
        elif kind == NOT_RTP:
            stats.not_rtp += 1
        elif kind == OTHER_PAYLOAD:
            stats.other_payload += 1
        else:  # TRUNCATED, or AUDIO too short to hold a tag and nonce
            stats.truncated += 1

    def _discard(self, ssrc: int) -> None:
        """Free a speaker who may no longer be heard, without decoding what it still buffers (lock held)."""
        speaker = self._speakers.pop(ssrc)
        speaker.decoder.close()
        self._refused[ssrc] = speaker.user_id
        if self._active:
            self._post(speaker.user_id, None, 0)

    def _retire(self, ssrc: int, *, gone: bool) -> None:
        """Flush and free one speaker's state (lock held)."""
        speaker = self._speakers.pop(ssrc, None)
        if speaker is None:
            return
        try:
            if self._active or gone:
                for entry_ts, packet, fec in speaker.jitter.flush():
                    if packet is None:
                        self._conceal(speaker, entry_ts, fec)
                    else:
                        self._play(speaker, entry_ts, packet)
                tail = speaker.resampler.flush()
                if tail:
                    self._post(speaker.user_id, tail, speaker.end_ts - (len(tail) >> 1) * 3)
            if gone:
                self._post(speaker.user_id, None, 0)
        finally:
            speaker.decoder.close()
