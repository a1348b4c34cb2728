"""UDP packets → per-speaker 16 kHz mono PCM, attached to discord.py's voice connection.

Threading: the process's receive thread (``reader.ReceiveHub``, standing in for discord.py
2.7.1's ``SocketReader`` thread per ``VoiceConnectionState``) calls every registered listener with
each datagram. All heavy work (transport decrypt, DAVE decrypt, jitter, Opus decode,
downmix/resample) runs there, off the event loop. Finished chunks cross to the loop through
``handoff.Handoff``; who is who (the SSRC map, orphans, consent) is kept in ``speakers.Speakers``.
This module is the packet path between them.

Reconnects: the reader and its listener list survive ``disconnect(cleanup=False)`` /
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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from bot.audio.frames import OPUS_SILENCE
from bot.audio.opus import OpusDecodeError, OpusDecoder
from bot.audio.resample import DownmixResampler
from bot.voice.dave import NO_VALID_CRYPTOR, DaveConnection, DaveFrameDecryptor
from bot.voice.handoff import Handoff, SpeechSink
from bot.voice.identify import SsrcIdentifier
from bot.voice.jitter import DUPLICATE, IN_ORDER
from bot.voice.rtp import OPUS_PAYLOAD_TYPE, SAMPLES_PER_FRAME, unpack_seq_ts_ssrc
from bot.voice.speakers import Admission, Decoder, Resampler, Speaker, Speakers
from bot.voice.stats import RateLimitedLog, ReceiveStats
from bot.voice.transport import MalformedPacketError, TransportAuthError, TransportDecryptor, make_decryptor

if TYPE_CHECKING:
    from collections import deque

_log = logging.getLogger(__name__)

# Frames held per speaker while their DAVE key is unknown: 160 ms. A davey-based sender switches
# to a new epoch's key as soon as it processes the commit, before the voice gateway has relayed
# that commit to us (libdave clients wait for the execute transition), so the first frames after
# a join or leave would be lost (measured: 1 frame per re-key through the fake voice server).
HELD_FRAMES = 8

class VoiceConnection(DaveConnection, Protocol):
    """The attributes of discord.py's ``VoiceConnectionState`` the receiver reads."""

    secret_key: Any
    mode: Any
    ssrc: Any

    def add_socket_listener(self, callback: Callable[[bytes], Any]) -> None: ...
    def remove_socket_listener(self, callback: Callable[[bytes], Any]) -> None: ...


class VoiceReceiver:
    """The packet path of one voice connection: datagram in, 16 kHz chunks out to the handoff."""

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
        """``batch_interval``: see ``Handoff``. The default 0 delivers on the wakeup itself: every
        ms here delays the end of a turn and a barge-in, and chunks that arrive while the loop is
        busy still ride along with the pending wakeup."""
        self._connection = connection
        self.stats = ReceiveStats()
        self._rlog = RateLimitedLog(_log, clock=clock)
        self._dave = DaveFrameDecryptor(connection, self.stats.dave, log=self._rlog, hold_unknown_keys=True)
        self._lock = threading.Lock()
        self.speakers = Speakers(
            self.stats, decoder_factory=decoder_factory, resampler_factory=resampler_factory,
            jitter_depth=jitter_depth,
        )  # fmt: skip
        self._active_speakers = self.speakers.active  # the same dict, one lookup less per packet
        self.handoff = Handoff(batch_interval=batch_interval, log=self._rlog)
        self._identifier = SsrcIdentifier()
        self._key_source: object = None
        self._transport: TransportDecryptor | None = None
        self._active = False

    # ----------------------------------------------------------------- loop side
    @property
    def receiving(self) -> bool:
        return self._active

    @property
    def refused_packets(self) -> dict[int, int]:
        """Per user: packets dropped for consent before transport decryption, DAVE or Opus decode."""
        return self.speakers.refused_packets

    def user_for_ssrc(self, ssrc: int) -> int | None:
        return self.speakers.users.get(ssrc)

    def start(
        self, sink: SpeechSink, loop: asyncio.AbstractEventLoop | None = None, *, admit: Admission | None = None
    ) -> None:
        """Begin delivering audio to ``sink`` (call on the event loop that should receive it).

        ``admit``: users it refuses are never decrypted, decoded or delivered (None admits all)."""
        with self._lock:
            self.handoff.sink = sink
            self.handoff.loop = loop or asyncio.get_running_loop()
            self.speakers.admit = admit
            self.speakers.refused.clear()
            self._active = True
        self._register()

    def readmit(self) -> None:
        """The admission answers changed: drop refused speakers at once (their undecoded packets
        unheard), and ask again for every SSRC on its next packet."""
        with self._lock:
            for speaker in self.speakers.refuse_now_refused():
                speaker.decoder.close()
                if self._active:
                    self._post(speaker.user_id, None, 0)

    def stop(self) -> None:
        """Stop receiving: unregister, flush every speaker, deliver the tails and ``on_speaker_gone``."""
        self._connection.remove_socket_listener(self.on_packet)
        with self._lock:
            self._active = False
            for speaker in self.speakers.take_all():
                self._retire(speaker, gone=True)
        self.handoff.deliver()
        self.handoff.sink = None

    def map_ssrc(self, ssrc: int, user_id: int) -> None:
        """SPEAKING (op 5): ``ssrc`` belongs to ``user_id``."""
        with self._lock:
            for speaker in self.speakers.map(ssrc, user_id):
                self._retire(speaker, gone=False)

    def forget_user(self, user_id: int) -> None:
        """CLIENT_DISCONNECT (op 13): drop the user's SSRCs and state, then tell the sink."""
        with self._lock:
            ended, had_ssrc = self.speakers.forget(user_id)
            for speaker in ended:
                self._retire(speaker, gone=False)
            if had_ssrc and self._active:
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

    # ----------------------------------------------------------------- reader thread
    def on_packet(self, data: bytes) -> None:
        """Socket listener: runs on the receive thread for every datagram."""
        try:
            with self._lock:
                if self._active:
                    self._handle(data)
        except Exception:
            # Our bug must not reach the reader, which would log it (rate-limited) and count nothing.
            self.stats.internal_errors += 1
            self._rlog(logging.ERROR, "internal", "Voice receive failed on a packet", exc_info=True)

    def _handle(self, data: bytes) -> None:
        stats = self.stats
        stats.packets += 1
        if len(data) < 20 or (data[0] & 0xC0) != 0x80 or (data[1] & 0x7F) != OPUS_PAYLOAD_TYPE:
            stats.count_not_audio(data)
            return
        seq, ts, ssrc = unpack_seq_ts_ssrc(data, 2)
        speaker = self._active_speakers.get(ssrc)
        if speaker is None:
            opened = self.speakers.open(ssrc, data, self._connection.ssrc)
            if opened is None:
                orphans = self.speakers.orphans.get(ssrc)
                if orphans:
                    self._identify(ssrc, orphans)
                return
            speaker, early = opened
            if early:  # packets that beat their SPEAKING event over the websocket
                for packet in early:
                    early_seq, early_ts, _ = unpack_seq_ts_ssrc(packet, 2)
                    self._process(speaker, packet, early_seq, early_ts)
        self._process(speaker, data, seq, ts)

    def _identify(self, ssrc: int, orphans: deque[bytes]) -> None:
        """No SPEAKING for this SSRC: ask DAVE whose it is (``identify.py``), then hear it."""
        if not self._connection.dave_protocol_version:
            return  # a plain call carries no proof of the sender: wait for SPEAKING
        if self._connection.secret_key is not self._key_source:
            self._rekey()
        found = self._identifier.identify(ssrc, orphans, self._connection.dave_session, self._transport)
        if found is None:
            return
        index, user_id, opus = found
        self.stats.identified_ssrcs += 1
        for ended in self.speakers.map(ssrc, user_id):
            self._retire(ended, gone=False)
        last = orphans.pop()
        opened = self.speakers.open(ssrc, last, self._connection.ssrc)  # consent is asked here
        if opened is None:
            return
        speaker, early = opened
        for position, packet in enumerate([*(early or ()), last]):
            seq, ts, _ = unpack_seq_ts_ssrc(packet, 2)
            if position != index:
                self._process(speaker, packet, seq, ts)
            elif not speaker.jitter.admit(seq):  # its nonce is spent: use what identify opened
                self.stats.decrypted += 1
                self.stats.dave.decrypted += 1
                self._push(speaker, seq, ts, opus)

    def _process(self, speaker: Speaker, data: bytes, seq: int, ts: int) -> None:
        stats = self.stats
        jitter = speaker.jitter
        verdict = jitter.admit(seq)
        if verdict:
            if verdict == DUPLICATE:
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
        if speaker.held is not None:
            self._retry_held(speaker, after_epoch_change=True)
        opus = self._dave.open(speaker.user_id, payload)
        if not opus:
            if opus is not None:  # HOLD: the commit with its key may be on its way
                self._hold(speaker, seq, ts, payload)
            return
        if speaker.held is not None:
            self._retry_held(speaker, after_epoch_change=False)
        self._push(speaker, seq, ts, opus)

    def _push(self, speaker: Speaker, seq: int, ts: int, opus: bytes) -> None:
        stats = self.stats
        jitter = speaker.jitter
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

    def _hold(self, speaker: Speaker, seq: int, ts: int, payload: bytes) -> None:
        held = speaker.held
        if held is None:
            held = speaker.held = []
        elif len(held) >= HELD_FRAMES:
            del held[0]
            self._dave.count_failure(NO_VALID_CRYPTOR, speaker.user_id)
        held.append((seq, ts, payload))
        session = self._connection.dave_session
        speaker.held_epoch = session.epoch if session is not None else None

    def _retry_held(self, speaker: Speaker, *, after_epoch_change: bool) -> None:
        """Before the next frame is decrypted, once the DAVE epoch has moved on (the commit with
        their key was processed), retry the held frames in arrival order: davey refuses a nonce
        older than one it has already accepted from that sender, and the jitter buffer gets them
        in their places. If a newer frame decrypted without an epoch change, they are lost."""
        if after_epoch_change:
            session = self._connection.dave_session
            if session is None or session.epoch == speaker.held_epoch:
                return
        held, speaker.held = speaker.held, None
        dave = self._dave
        for seq, ts, payload in held or ():
            if not after_epoch_change:
                dave.count_failure(NO_VALID_CRYPTOR, speaker.user_id)
                continue
            opus = dave.open(speaker.user_id, payload)
            if opus:
                self.stats.dave.recovered += 1
                self._push(speaker, seq, ts, opus)
            elif opus is not None:  # still no key: open() did not count it
                dave.count_failure(NO_VALID_CRYPTOR, speaker.user_id)

    def _play(self, speaker: Speaker, ts: int, opus: bytes) -> None:
        try:
            pcm = speaker.decoder.decode(opus)
        except OpusDecodeError:
            self.stats.decode_errors += 1
            self._conceal(speaker, ts, None)  # keep the timeline: a corrupt frame is a lost frame
            return
        self.stats.decoded += 1
        speaker.end_ts = end = ts + SAMPLES_PER_FRAME
        # The client's silence frames end a talk spurt: the resampler's held-back audio goes now,
        # not when the member next speaks (the pause that ends a turn is heard 7-36 ms sooner).
        out = speaker.resampler.drain(pcm) if opus == OPUS_SILENCE else speaker.resampler.process(pcm)
        if out:
            self._post(speaker.user_id, out, end - (len(out) >> 1) * 3)

    def _conceal(self, speaker: Speaker, ts: int, fec: bytes | None) -> None:
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
        if pcm is not None:
            self.stats.frames_out += 1
        if not self.handoff.post(user_id, pcm, ts):
            self._active = False

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

    def _retire(self, speaker: Speaker, *, gone: bool) -> None:
        """Flush and free one speaker's state, already out of the table (lock held)."""
        for _ in speaker.held or ():
            self._dave.count_failure(NO_VALID_CRYPTOR, speaker.user_id)
        speaker.held = None
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
