import asyncio
import os
import struct

import numpy as np
import pytest

from bot.audio.opus import OpusDecoder
from bot.audio.resample import AlreadyMono16k, DownmixResampler
from bot.voice.dave import NO_VALID_CRYPTOR, NOT_READY
from bot.voice.receiver import VoiceReceiver
from tests.fakes.voice.packets import (
    ALICE_ID,
    ALICE_SSRC,
    BOB_ID,
    BOB_SSRC,
    BOT_SSRC,
    SILENCE,
    FakeConnection,
    RecordingSink,
    dave_group,
    opus_packets,
    seal,
)

FRAMES = 50
STT_BYTES_PER_FRAME = 640


class SpyDecoder:
    """The real libopus decoder, recording what it is asked to do."""

    def __init__(self):
        self.inner = OpusDecoder()
        self.decoded: list[bytes] = []
        self.concealed: list[bytes | None] = []
        self.closed = False

    def decode(self, packet):
        self.decoded.append(packet)
        return self.inner.decode(packet)

    def conceal(self, next_packet=None):
        self.concealed.append(next_packet)
        return self.inner.conceal(next_packet)

    def close(self):
        self.closed = True
        self.inner.close()


class Rig:
    def __init__(self, *, dave=None, depth=3):
        self.group = dave
        self.conn = FakeConnection(
            dave_session=dave.bot if dave else None, dave_protocol_version=1 if dave else 0
        )
        self.decoders: list[SpyDecoder] = []
        self.receiver = VoiceReceiver(
            self.conn,
            decoder_factory=self._decoder,
            resampler_factory=DownmixResampler,
            jitter_depth=depth,
            batch_interval=0,
        )
        self.sink = RecordingSink()
        self.counter = 0

    def _decoder(self):
        decoder = SpyDecoder()
        self.decoders.append(decoder)
        return decoder

    async def start(self):
        self.receiver.start(self.sink)
        self.receiver.map_ssrc(ALICE_SSRC, ALICE_ID)
        self.receiver.map_ssrc(BOB_SSRC, BOB_ID)

    def packet(self, seq, opus, *, ssrc=ALICE_SSRC, encrypt=True, key=None):
        payload = opus
        if encrypt and self.group is not None and opus != SILENCE:
            payload = self.group.member.encrypt_opus(opus)
        self.counter += 1
        return seal(key or self.conn.key, seq, seq * 960, ssrc, payload, counter=self.counter)

    def feed(self, packets):
        for p in packets:
            self.receiver.on_packet(p)

    @property
    def stats(self):
        return self.receiver.stats


async def settle():
    await asyncio.sleep(0)  # the batched delivery runs on the next loop iteration


async def test_two_ssrcs_become_two_attributed_streams():
    rig = Rig()
    await rig.start()
    alice, bob = opus_packets(FRAMES, seed=1), opus_packets(FRAMES, seed=2)
    for seq in range(FRAMES):
        rig.feed([rig.packet(seq, alice[seq]), rig.packet(1000 + seq, bob[seq], ssrc=BOB_SSRC)])
    await settle()
    rig.receiver.stop()
    assert [d.decoded for d in rig.decoders] == [alice, bob]
    for user in (ALICE_ID, BOB_ID):
        pcm = np.frombuffer(rig.sink.pcm(user), dtype=np.int16)
        assert pcm.size * 2 == FRAMES * STT_BYTES_PER_FRAME  # after the resampler tail is flushed
        assert np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) > 500
    # stop(): each speaker's resampler tail, then its gone, nothing after.
    assert rig.sink.events[-4:] == [
        ("frame", ALICE_ID),
        ("gone", ALICE_ID),
        ("frame", BOB_ID),
        ("gone", BOB_ID),
    ]
    assert rig.stats.decoded == 2 * FRAMES and rig.stats.concealed == 0
    assert all(d.closed for d in rig.decoders)


async def test_own_ssrc_and_non_audio_datagrams_are_never_decoded():
    rig = Rig()
    await rig.start()
    discovery = bytearray(74)
    struct.pack_into(">HHI", discovery, 0, 2, 70, BOT_SSRC)
    rtcp = struct.pack(">BBHI", 0x81, 201, 7, ALICE_SSRC) + bytes(24)
    rig.feed([rig.packet(1, opus_packets(1)[0], ssrc=BOT_SSRC), bytes(discovery), rtcp, b"\x00" * 30])
    assert rig.decoders == []
    s = rig.stats
    assert (s.own_ssrc, s.ip_discovery, s.rtcp, s.not_rtp, s.packets) == (1, 1, 1, 1, 4)


async def test_corrupt_truncated_and_wrong_key_packets_are_counted_not_raised():
    rig = Rig()
    await rig.start()
    opus = opus_packets(4)
    good = rig.packet(0, opus[0])
    rig.feed(
        [
            good[:10],  # shorter than a header
            good[:25],  # header but no room for the tag
            rig.packet(1, opus[1], key=os.urandom(32)),
            good[:20] + bytes([good[20] ^ 0xFF]) + good[21:],
            os.urandom(200),
        ]
    )
    rig.feed([rig.packet(2, opus[2]), rig.packet(3, opus[3])])
    assert rig.stats.truncated == 2
    assert rig.stats.transport_failures == 2
    assert rig.decoders[0].decoded == [opus[2], opus[3]]


async def test_a_bug_below_the_listener_never_escapes_to_the_socket_reader():
    rig = Rig()

    def broken_decoder():
        raise RuntimeError("boom")

    rig.receiver.speakers.decoder_factory = broken_decoder
    await rig.start()
    rig.feed([rig.packet(0, opus_packets(1)[0])])
    assert rig.stats.internal_errors == 1


async def test_dave_failures_never_reach_the_decoder_and_leave_a_true_timeline():
    rig = Rig(dave=dave_group())
    await rig.start()
    opus = opus_packets(20)
    packets = [rig.packet(seq, opus[seq]) for seq in range(20)]
    # seq 5: tampered DAVE frame; seq 9: sent plaintext while E2EE is established.
    tampered = rig.group.member.encrypt_opus(opus[5])
    tampered = bytes([tampered[0] ^ 0x40]) + tampered[1:]
    packets[5] = seal(rig.conn.key, 5, 5 * 960, ALICE_SSRC, tampered, counter=500)
    packets[9] = seal(rig.conn.key, 9, 9 * 960, ALICE_SSRC, opus[9], counter=501)
    rig.feed(packets)
    await settle()
    decoder = rig.decoders[0]
    assert decoder.decoded == [p for i, p in enumerate(opus) if i not in (5, 9)]
    assert len(decoder.concealed) == 2  # the two dropped frames, concealed in place
    assert rig.stats.dave.failures == {NO_VALID_CRYPTOR: 1, "unencrypted": 1}
    assert rig.stats.dave.decrypted == 18


async def test_encrypted_frames_before_the_group_exists_are_dropped():
    group = dave_group()
    rig = Rig()
    rig.conn.dave_protocol_version = 1  # joined an E2EE call; our welcome has not arrived
    await rig.start()
    rig.feed([seal(rig.conn.key, 0, 0, ALICE_SSRC, group.member.encrypt_opus(opus_packets(1)[0]))])
    assert rig.stats.dave.failures == {NOT_READY: 1}
    assert rig.decoders[0].decoded == []


async def test_silence_frames_are_decoded_without_dave():
    rig = Rig(dave=dave_group())
    await rig.start()
    rig.feed([rig.packet(seq, SILENCE) for seq in range(5)])
    assert rig.decoders[0].decoded == [SILENCE] * 5
    assert rig.stats.dave.silence == 5


async def test_reorder_duplicates_late_and_loss_keep_the_timeline():
    rig = Rig(depth=3)
    await rig.start()
    opus = opus_packets(30, fec=True)
    order = [0, 1, 2, 4, 3, 5, 5, 6, 8, 9, 10, 7, 11, 12] + list(range(13, 30))  # 7 arrives too late
    order.remove(20)  # lost
    rig.feed([rig.packet(seq, opus[seq]) for seq in order])
    await settle()
    rig.receiver.stop()
    decoder = rig.decoders[0]
    assert len(decoder.decoded) + len(decoder.concealed) == 30
    assert decoder.concealed == [opus[8], opus[21]]  # FEC from the packet after each hole
    assert (rig.stats.duplicates, rig.stats.dropped_late, rig.stats.concealed) == (1, 1, 2)
    assert len(rig.sink.pcm(ALICE_ID)) == 30 * STT_BYTES_PER_FRAME


async def test_sequence_wraparound_through_the_receiver():
    rig = Rig()
    await rig.start()
    opus = opus_packets(10)
    rig.feed([rig.packet((65530 + i) & 0xFFFF, opus[i]) for i in range(10)])
    assert rig.decoders[0].decoded == opus
    assert rig.stats.resyncs == 0


async def test_receiving_resumes_after_a_reconnect_with_new_key_ssrc_and_dave_group():
    rig = Rig(dave=dave_group())
    await rig.start()
    opus = opus_packets(20)
    rig.feed([rig.packet(seq, opus[seq]) for seq in range(10)])
    # What discord.py's reconnect leaves behind: a new key list, a new own SSRC, a re-keyed group.
    rig.group = dave_group()
    rig.conn.secret_key = list(os.urandom(32))
    rig.conn.ssrc = 4444
    rig.conn.dave_session = rig.group.bot
    rig.feed([rig.packet(seq, opus[seq - 300]) for seq in range(310, 320)])
    await settle()
    assert rig.decoders[0].decoded == opus[:20]
    assert rig.stats.resyncs == 1 and rig.stats.transport_failures == 0


async def test_packets_that_beat_their_speaking_event_are_replayed():
    rig = Rig()
    rig.receiver.start(rig.sink)
    opus = opus_packets(6)
    rig.feed([rig.packet(seq, opus[seq]) for seq in range(3)])
    assert rig.stats.unknown_ssrc == 3 and rig.decoders == []
    await rig.receiver.on_voice_ws_message(
        None, {"op": 5, "d": {"user_id": str(ALICE_ID), "ssrc": ALICE_SSRC, "speaking": 1}}
    )
    rig.feed([rig.packet(seq, opus[seq]) for seq in range(3, 6)])
    assert rig.decoders[0].decoded == opus


async def test_client_disconnect_delivers_remaining_audio_then_gone():
    rig = Rig()
    await rig.start()
    opus = opus_packets(10)
    rig.feed([rig.packet(seq, opus[seq]) for seq in range(10)])
    await rig.receiver.on_voice_ws_message(None, {"op": 13, "d": {"user_id": str(ALICE_ID)}})
    await settle()
    assert rig.sink.events == [("frame", ALICE_ID), ("gone", ALICE_ID)]
    assert len(rig.sink.pcm(ALICE_ID)) == 10 * STT_BYTES_PER_FRAME
    assert rig.receiver.user_for_ssrc(ALICE_SSRC) is None
    rig.feed([rig.packet(10, opus[0])])
    assert rig.stats.unknown_ssrc == 1


async def test_frames_reach_the_loop_in_one_wakeup_per_batch():
    rig = Rig()
    loop = asyncio.get_running_loop()
    wakeups, timers = [], []

    class RecordingLoop:
        """Cross-thread wakeups and timers are recorded; the test fires the timer itself."""

        def call_soon_threadsafe(self, callback, *args):
            wakeups.append(callback)
            return loop.call_soon_threadsafe(callback, *args)

        def call_later(self, delay, callback, *args):
            timers.append((delay, callback))

    rig.receiver = VoiceReceiver(rig.conn, decoder_factory=rig._decoder, batch_interval=0.02)
    rig.receiver.start(rig.sink, RecordingLoop())
    rig.receiver.map_ssrc(ALICE_SSRC, ALICE_ID)
    opus = opus_packets(FRAMES)
    half = FRAMES // 2
    await asyncio.to_thread(rig.feed, [rig.packet(seq, opus[seq]) for seq in range(half)])
    await settle()  # the wakeup ran and armed the batch timer; nothing delivered yet
    assert len(wakeups) == 1 and [d for d, _ in timers] == [0.02] and rig.sink.frames == []
    await asyncio.to_thread(rig.feed, [rig.packet(seq, opus[seq]) for seq in range(half, FRAMES)])
    assert len(wakeups) == 1  # still one batch pending: no further cross-thread calls
    timers[0][1]()
    assert rig.stats.frames_out == len(rig.sink.frames) > 10
    assert sum(len(p) for _, p, _ in rig.sink.frames) > (FRAMES - 5) * STT_BYTES_PER_FRAME


async def test_a_busy_loop_gets_one_wakeup_for_many_packets():
    rig = Rig()
    await rig.start()
    opus = opus_packets(FRAMES)
    rig.feed([rig.packet(seq, opus[seq]) for seq in range(FRAMES)])  # the loop cannot run meanwhile
    assert rig.receiver.handoff.pending == rig.stats.frames_out > 10
    await settle()
    assert rig.receiver.handoff.pending == 0 and len(rig.sink.frames) == rig.stats.frames_out


@pytest.mark.parametrize(
    "msg", [{"op": 5, "d": {"user_id": "x", "ssrc": 1}}, {"op": 5, "d": None}, {"op": 99}]
)
async def test_malformed_websocket_events_are_ignored(msg):
    rig = Rig()
    await rig.receiver.on_voice_ws_message(None, msg)
    assert rig.receiver.user_for_ssrc(1) is None


async def test_an_unannounced_ssrc_is_identified_by_the_dave_key_that_opens_it():
    # After a voice server change Alice talks on a new SSRC and no SPEAKING ever names it.
    rig = Rig(dave=dave_group())
    await rig.start()
    new_ssrc = 4444
    opus = opus_packets(20)
    forged = [seal(rig.conn.key, s, s * 960, 5555, os.urandom(60) + b"\x00\xfa\xfa", counter=900 + s)
              for s in range(10)]  # DAVE-shaped, but nobody's key opens it
    rig.feed(forged)
    rig.feed([rig.packet(seq, opus[seq], ssrc=new_ssrc) for seq in range(20)])
    await settle()

    assert rig.receiver.user_for_ssrc(new_ssrc) == ALICE_ID
    assert rig.receiver.user_for_ssrc(ALICE_SSRC) is None  # her old SSRC is retired
    assert rig.receiver.user_for_ssrc(5555) is None
    assert rig.stats.identified_ssrcs == 1
    decoder = rig.decoders[-1]
    assert decoder.decoded == opus  # every frame, the early ones included, in order
    assert rig.stats.decode_errors == 0 and not rig.stats.dave.failures


async def test_the_16k_decode_mode_delivers_the_same_timeline_without_a_resampler():
    rig = Rig(dave=dave_group())
    rig.receiver = VoiceReceiver(
        rig.conn, decoder_factory=lambda: OpusDecoder(sample_rate=16_000, channels=1),
        resampler_factory=AlreadyMono16k, batch_interval=0,
    )
    await rig.start()
    opus = opus_packets(FRAMES)
    rig.feed([rig.packet(seq, opus[seq]) for seq in range(FRAMES)])
    await settle()
    frames = [(ts, len(pcm)) for uid, pcm, ts in rig.sink.frames if uid == ALICE_ID]
    assert [n for _, n in frames] == [STT_BYTES_PER_FRAME] * FRAMES  # one 20 ms frame per packet
    assert [ts - frames[0][0] for ts, _ in frames] == [960 * i for i in range(FRAMES)]
    assert rig.stats.decoded == FRAMES and rig.stats.decode_errors == 0


async def test_a_talk_spurts_silence_frames_deliver_everything_received_at_once():
    # soxr holds 7-36 ms of a stream at any time; in a pause nothing pushed it out, so the speech
    # recogniser heard the end of a turn's silence that much late (issue 12's room latency).
    rig = Rig()
    await rig.start()
    speech = opus_packets(FRAMES, seed=3)
    rig.feed([rig.packet(seq, speech[seq]) for seq in range(FRAMES)])
    await settle()
    held = FRAMES * STT_BYTES_PER_FRAME - len(rig.sink.pcm(ALICE_ID))
    assert held > 0  # the resampler holds part of the speech while the member talks
    for index in range(5):  # the client's five silence frames end the talk spurt
        rig.feed([rig.packet(FRAMES + index, SILENCE)])
        await settle()
        assert len(rig.sink.pcm(ALICE_ID)) == (FRAMES + index + 1) * STT_BYTES_PER_FRAME
    speech_again = opus_packets(FRAMES, seed=4)
    rig.feed([rig.packet(FRAMES + 5 + seq, speech_again[seq]) for seq in range(FRAMES)])
    rig.receiver.stop()
    await settle()
    # The next spurt starts a fresh stream: nothing is lost or doubled, the timeline is whole.
    assert len(rig.sink.pcm(ALICE_ID)) == (2 * FRAMES + 5) * STT_BYTES_PER_FRAME
