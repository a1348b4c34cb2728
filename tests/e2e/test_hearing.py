"""Issue 3 ("Hearing") end to end.

Every test runs the real bot (``bot.__main__.assemble``) logged in to the fake Discord, ``/join``-ed
into a voice channel served by the fake voice server (voice gateway v8 over TLS, UDP, a real
``davey`` DAVE group in which the simulated members are genuine MLS peers), receiving through
``VoxcordVoiceClient`` into ``Hearing``. Simulated members' audio takes the whole real path:
Opus → DAVE → RTP → transport AEAD → UDP → discord.py's socket reader → our receiver → 16 kHz →
per-speaker segmenter → ``Recorder.on_heard``.

What "matches its source" means here (``hearing_support.compare``): every Opus packet the member
ever sent, decoded in order by one libopus decoder, downmixed and resampled 48 kHz stereo → 16 kHz
mono by soxr in one shot (the receiver's decoder and resampler also run on across utterances);
the heard utterance is aligned to its part of that by cross-correlation. Tolerances:

- ``EXACT_CORRELATION`` 0.99 where every packet arrives: the receiver runs the same libopus and
  soxr, so only soxr's streaming-vs-one-shot ±1 LSB dither differs (measured 0.9999999), and
  no 20 ms frame may differ by more than 10 % of the utterance's RMS (measured ≤ 0.1 %).
- With packets lost on purpose: ``CONCEALED_CORRELATION`` 0.8 overall (measured 0.895 with 12 of
  156 frames lost), and only the lost frames and the ``RECOVERY_FRAMES`` (12, 240 ms) after each
  may differ: that is how long libopus takes to reconverge after concealment (measured: error
  1.8× RMS on the lost frame, < 10 % after 4 frames alone or 11 after a 5-frame burst). Every
  other frame is exact *and in place*, which a skipped or doubled frame would break.
- ``FRAME_SLACK`` ±3 frames (60 ms) on durations: the heard utterance covers every sent frame
  (lost ones concealed, trailing silence frames included), minus the part of its tail still
  inside soxr when packets stop (measured: 1 frame short).
- ``MAX_CARRIED_OVER`` 40 ms: soxr's streaming output lags its input by up to ~40 ms (a 490-sample
  output block plus filter delay); when a speaker pauses, that much of their previous audio (the
  trailing Opus silence) stays in the filter and comes out at the start of their next utterance.
  The first utterance of a stream carries nothing (measured 0).

Timing is never asserted; ``GUARD_S`` deadlines only turn a hang into a readable failure.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import time
from pathlib import Path

import pytest

from tests.e2e.hearing_support import (
    FRAME_S,
    GUARD_S,
    Call,
    Comparison,
    Utterance,
    best_match,
    call_with,
    compare,
    decoded_16k,
    voice,
)
from tests.fakes.voice import SentFrame, SimulatedSpeaker
from tests.fakes.voice.audio import encode_opus
from tests.fakes.voice.gateway import CLOSE_SESSION_INVALID, CLOSE_VOICE_SERVER_CRASHED
from tests.fakes.voice.rtp import RtpHeader, audio_level_extension, seal_rtp

EXACT_CORRELATION = 0.99
CONCEALED_CORRELATION = 0.8
FOREIGN_CORRELATION = 0.3  # a speaker's utterance against another speaker's source (measured ≈ 0.07)
FRAME_SLACK = 3
MAX_CARRIED_OVER = 640  # 40 ms of 16 kHz samples
RECOVERY_FRAMES = 12

log = logging.getLogger(__name__)


@pytest.fixture
def env(fake_discord, fake_voice, fake_discord_env):
    return fake_discord, fake_voice


def assert_heard(heard: Utterance, speaker: SimulatedSpeaker, sent: list[SentFrame], *,
                 lost: set[int] = frozenset(), unplaced_losses: int = 0) -> Comparison:
    """``heard`` is the whole of ``sent`` (tolerances in the module docstring). ``lost``: indices
    of ``sent`` that never reached the decoder; only frames within ``RECOVERY_FRAMES`` after one
    of them may differ from the reference. ``unplaced_losses``: frames the receiver refused at
    positions the test cannot know (DAVE failures), each allowed as many differing frames."""
    result = compare(heard.audio, speaker.sent, sent)
    log.info("user %s: %s", speaker.user_id, result)
    exact = not lost and not unplaced_losses
    assert result.match.correlation >= (EXACT_CORRELATION if exact else CONCEALED_CORRELATION), result
    assert 0 <= result.carried_over <= MAX_CARRIED_OVER, result
    allowed = {i + k for i in lost for k in range(RECOVERY_FRAMES + 1)}
    unexplained = set(result.mismatched_frames) - allowed
    assert len(unexplained) <= unplaced_losses * (RECOVERY_FRAMES + 1), (sorted(lost), result)
    assert abs(result.heard_seconds - result.sent_seconds) <= FRAME_SLACK * FRAME_S, result
    assert heard.ended is not None and heard.ended.duration == pytest.approx(heard.seconds)
    return result


def assert_clean(call: Call) -> None:
    """No bug reached discord.py's reader thread, Hearing's grammar held, nothing undecodable was
    handed to Opus as audio."""
    stats = call.voice_client.receive_stats
    assert stats.internal_errors == 0, stats.snapshot()
    assert stats.decode_errors == 0, stats.snapshot()
    assert not call.recorder.grammar_errors, call.recorder.grammar_errors
    assert call.voice_client._connection._socket_reader.is_alive()


async def speak(call: Call, speaker: SimulatedSpeaker, seconds: float, *, seed: int,
                **impairments) -> list[SentFrame]:
    """Non-realtime by default: the packets' sequence numbers and timestamps carry the timeline,
    and Hearing ends the utterance once packets stop for its ``silence_end``.

    SPEAKING (op 5, the SSRC → user map) is sent and seen by the bot first. A real client sends it
    before its audio and paces its packets, so it wins the websocket/UDP race; a burst of seconds of
    audio in a few milliseconds would outrun it and overflow the receiver's 0.5 s orphan buffer."""
    impairments.setdefault("realtime", False)
    await call.announced(speaker)
    return await asyncio.wait_for(speaker.speak(voice(seconds, seed=seed), **impairments), GUARD_S)


async def test_two_members_talking_at_once_are_heard_apart(env, tmp_path: Path) -> None:
    """Bob and Alice talk over each other (real-time pacing, their packets interleaved on one
    socket; different seeds, Alice 1.35× higher pitched). Hearing yields one utterance per member,
    attributed to the right user id, each matching its own source and not the other's."""
    async with call_with(*env, tmp_path, speakers=2) as (call, (bob, alice)):
        sent_bob, sent_alice = await asyncio.wait_for(asyncio.gather(
            bob.speak(voice(2.0, seed=11), realtime=True),
            alice.speak(voice(2.0, seed=23, pitch=1.35), realtime=True),
        ), GUARD_S)
        [heard_bob] = await call.recorder.wait_utterances(bob.user_id, 1)
        [heard_alice] = await call.recorder.wait_utterances(alice.user_id, 1)

        assert call.hearing.speakers == {bob.user_id, alice.user_id}
        assert set(call.recorder.utterances) == {bob.user_id, alice.user_id}
        assert_heard(heard_bob, bob, sent_bob)
        assert_heard(heard_alice, alice, sent_alice)
        assert abs(best_match(decoded_16k(sent_bob), heard_alice.audio).correlation) < FOREIGN_CORRELATION
        assert abs(best_match(decoded_16k(sent_alice), heard_bob.audio).correlation) < FOREIGN_CORRELATION
        stats = call.voice_client.receive_stats
        assert stats.concealed == 0 and stats.transport_failures == 0 and not stats.dave.failures
        assert_clean(call)


async def test_loss_reordering_and_duplicates_keep_the_timeline(env, tmp_path: Path) -> None:
    """5 % random loss plus a 5-frame burst, 6 packets swapped with their successor, 6 sent
    twice. The utterance still arrives, as long as the sent timeline (every lost frame concealed
    by Opus PLC/FEC, none skipped), and the counters say exactly what happened."""
    async with call_with(*env, tmp_path, speakers=1) as (call, (bob,)):
        frames = len(encode_opus(voice(3.0, seed=5))) + 5  # + the trailing Opus silence frames
        rng = random.Random(7)
        # Loss never on the first packet (nothing before it to conceal from) nor in the tail (a
        # lost last packet has nothing after it to reveal the hole).
        burst = set(range(60, 65))
        random_loss = {i for i in range(1, frames - 8) if rng.random() < 0.05} - set(range(55, 70))
        lost = burst | random_loss
        free = [i for i in range(2, frames - 8) if not {i - 1, i, i + 1, i + 2} & lost]
        reorder = set(rng.sample(free[::4], 6))
        duplicate = set(rng.sample([i for i in free if not {i - 1, i, i + 1} & reorder], 6))

        sent = await speak(call, bob, 3.0, seed=5, loss=lost, reorder=reorder, duplicate=duplicate)
        [heard] = await call.recorder.wait_utterances(bob.user_id, 1)

        assert len(sent) == frames and [not f.delivered for f in sent].count(True) == len(lost)
        assert_heard(heard, bob, sent, lost=lost)
        stats = call.voice_client.receive_stats
        assert stats.duplicates == len(duplicate), stats.snapshot()
        assert stats.concealed == len(lost), stats.snapshot()
        assert stats.decoded == frames - len(lost), stats.snapshot()
        assert stats.dropped_late == 0 and stats.resyncs == 0, stats.snapshot()
        assert_clean(call)


async def test_member_joining_mid_speech_rekeys_without_cutting_the_speaker(env, tmp_path: Path) -> None:
    """Bob talks (real time) while Carol joins the call: the fake proposes her, a member commits,
    Bob's client switches to the new epoch's key at once and the bot follows via the commit
    (opcode 29) and transition. Bob's utterance continues as one utterance of the full length;
    afterwards Bob, Alice (an old member) and Carol (the new one) are all heard.

    No garbage is decoded: ``decode_errors`` must stay 0 and no unencrypted frame may be accepted
    while DAVE is on (``dave.passthrough == 0``), so every frame handed to Opus was either
    DAVE-authenticated or the Opus silence frame. Frames the bot could not decrypt during the
    switch (if any) are counted in ``dave.failures`` and concealed, hence the concealment
    tolerance on Bob's first utterance, and at most ``REKEY_DROP_BOUND`` of them."""
    rekey_drop_bound = 10  # 200 ms: one websocket round trip plus the MLS commit on a loaded host
    async with call_with(*env, tmp_path, speakers=2) as (call, (bob, alice)):
        epoch = call.voice_client._connection.dave_session.epoch
        talking = asyncio.create_task(speak(call, bob, 3.0, seed=31, realtime=True))
        await asyncio.sleep(1.0)  # mid-sentence
        carol = await call.member_joins_voice(call.users[2], seed=3)
        await call.settled()
        sent_bob = await talking
        [heard_bob] = await call.recorder.wait_utterances(bob.user_id, 1)

        state = call.voice_client._connection
        assert state.dave_session.epoch == epoch + 1
        assert str(carol.user_id) in state.dave_session.get_user_ids()
        stats = call.voice_client.receive_stats
        dropped = stats.dave.failed
        log.info("re-key mid-speech: DAVE failures %s, concealed %d", stats.dave.failures, stats.concealed)
        assert dropped <= rekey_drop_bound, stats.snapshot()
        assert stats.concealed == dropped, stats.snapshot()  # every undecryptable frame became PLC
        assert_heard(heard_bob, bob, sent_bob, unplaced_losses=dropped)

        everyone = (alice, carol, bob)
        after = await asyncio.gather(*(speak(call, s, 1.0, seed=40 + i) for i, s in enumerate(everyone)))
        for speaker, sent in zip(everyone, after, strict=True):
            heard = await call.recorder.wait_utterances(speaker.user_id, 2 if speaker is bob else 1)
            assert_heard(heard[-1], speaker, sent)
        assert stats.dave.passthrough == 0 and stats.dave.failed == dropped, stats.snapshot()
        assert_clean(call)


@pytest.mark.parametrize("code", [CLOSE_VOICE_SERVER_CRASHED, CLOSE_SESSION_INVALID])
async def test_voice_reconnect_resumes_hearing_by_itself(env, tmp_path: Path, caplog, code: int) -> None:
    """The voice server drops the websocket just as Bob starts to talk, and the bot reconnects
    by itself: op 4 leave and join on the main gateway, IDENTIFY, a new SSRC and key, a fresh DAVE
    group. Bob's client talks into the void until the new group includes him again. Receiving
    resumes without help and Bob's next utterance is heard completely.

    4015 ("voice server crashed", resume): discord.py 2.7.1's own resume never completes (it
    leaves the channel after the 30 s connect timeout); ``VoxcordConnectionState`` reconnects
    at once instead. 4006 (session no longer valid) is reconnected at once too (discord.py's own
    loop would first sleep a random 0–2 s ``ExponentialBackoff`` delay): both log a 0 s backoff
    and discord.py's backoff never runs. The drop → first frame heard time is logged, not
    asserted: handshake + DAVE group re-forming."""
    caplog.set_level(logging.INFO, logger="discord.voice_state")
    caplog.set_level(logging.INFO, logger="bot.voice.connection_state")
    async with call_with(*env, tmp_path, speakers=1) as (call, (bob,)):
        await speak(call, bob, 1.0, seed=50)
        await call.recorder.wait_utterances(bob.user_id, 1)
        old_ssrc = call.voice.session(call.guild_id).ssrc
        arrivals = call.hearing.arrivals[bob.user_id]
        heard_before = len(arrivals)

        # Synthesised and encoded beforehand: that is ~0.15 s of CPU on the event loop, which
        # would otherwise delay the bot's reconnect and be measured as part of it.
        opus = encode_opus(voice(3.0, seed=51))
        dropped_at = time.monotonic()
        await call.voice.drop_connection(call.guild_id, code=code)
        await asyncio.wait_for(bob.speak_opus(opus, realtime=True), GUARD_S)  # until all is sent
        await call.recorder.wait_for(lambda: len(arrivals) > heard_before, what="audio after the drop")
        recovery = arrivals[heard_before] - dropped_at
        backoff = [float(m) for r in caplog.records
                   for m in re.findall(r"Reconnecting in ([\d.]+)s", r.getMessage())]
        ours = [float(m) for r in caplog.records
                for m in re.findall(r"reconnecting in ([\d.]+) s", r.getMessage())]
        log.warning("voice reconnect after %d: first frame heard %.3f s after the drop; backoff %s s",
                    code, recovery, ours)
        assert recovery < GUARD_S
        assert call.voice.session(call.guild_id).ssrc != old_ssrc  # a brand-new voice session
        assert backoff == [] and ours == [0.0]

        await call.recorder.wait_for(lambda: not call.hearing.speaking(bob.user_id), what="the cut utterance")
        done = len(call.recorder.finished(bob.user_id))
        sent = await speak(call, bob, 1.5, seed=52)
        heard = await call.recorder.wait_utterances(bob.user_id, done + 1)
        assert_heard(heard[-1], bob, sent)
        assert_clean(call)


async def test_damaged_packets_are_counted_and_dropped_around_real_speech(env, tmp_path: Path) -> None:
    """Between every 5 real frames of Bob's utterance the wire also carries one of: a packet
    sealed with a wrong key, one with a flipped ciphertext byte, one cut inside its ciphertext,
    one cut inside its header, a transport-valid packet with garbage where the DAVE frame should be,
    an RTCP receiver report and a non-RTP datagram. Each damaged packet claims the sequence number
    of the next real frame, so a receiver that let one through would corrupt or displace it.
    Each is counted under its own reason and dropped; the reader thread lives on; the real
    utterance arrives whole (no frame lost or concealed) and a later one too."""
    async with call_with(*env, tmp_path, speakers=1) as (call, (bob,)):
        session = call.voice.session(call.guild_id)
        opus = encode_opus(voice(2.0, seed=61))
        kinds = ("wrong_key", "flipped", "cut_ciphertext", "cut_header", "dave_garbage", "rtcp", "not_rtp")
        counts = dict.fromkeys(kinds, 0)
        sent: list[SentFrame] = []
        await call.announced(bob)
        for chunk, start in enumerate(range(0, len(opus), 5)):
            sent += await asyncio.wait_for(bob.speak_opus(
                opus[start : start + 5], realtime=False, trailing_silence=0 if start + 5 < len(opus) else 5,
            ), GUARD_S)
            kind = kinds[chunk % len(kinds)]
            counts[kind] += 1
            if kind == "wrong_key":
                await bob.send_rtp(opus[0], key=os.urandom(32))
            elif kind == "flipped":
                header = RtpHeader(bob.sequence, bob.timestamp, bob.ssrc, extension=audio_level_extension())
                packet = bytearray(seal_rtp(session.cipher, header, os.urandom(80), 0xFFFF_0000 + chunk))
                packet[-10] ^= 0x55
                bob.send_raw(bytes(packet))
            elif kind == "cut_ciphertext":
                await bob.send_rtp(opus[0], truncate=30)
            elif kind == "cut_header":
                await bob.send_rtp(opus[0], truncate=10)
            elif kind == "dave_garbage":
                await bob.send_rtp(os.urandom(60) + b"\x00\xfa\xfa", dave=False)
            elif kind == "rtcp":
                bob.send_rtcp()
            else:
                bob.send_raw(bytes([0x00]) + os.urandom(47))
        [heard] = await call.recorder.wait_utterances(bob.user_id, 1)

        stats = call.voice_client.receive_stats
        assert stats.transport_failures == counts["wrong_key"] + counts["flipped"], stats.snapshot()
        assert stats.truncated == counts["cut_ciphertext"] + counts["cut_header"], stats.snapshot()
        assert stats.dave.failed == counts["dave_garbage"], stats.snapshot()
        assert stats.rtcp == counts["rtcp"] and stats.not_rtp == counts["not_rtp"], stats.snapshot()
        assert stats.concealed == 0 and stats.duplicates == 0 and stats.dropped_late == 0, stats.snapshot()
        assert stats.decoded == len(sent), stats.snapshot()
        assert_heard(heard, bob, sent)

        later = await speak(call, bob, 1.0, seed=62)
        heard_later = await call.recorder.wait_utterances(bob.user_id, 2)
        assert_heard(heard_later[-1], bob, later)
        assert_clean(call)


async def test_dave_downgrade_and_upgrade_keep_hearing(env, tmp_path: Path) -> None:
    """The call is downgraded to protocol 0 (plain Opus after the transition) and upgraded back
    (opcode 24, a brand-new group): Bob is heard completely in each phase, through passthrough
    while downgraded and through DAVE decryption after the upgrade."""
    async with call_with(*env, tmp_path, speakers=1) as (call, (bob,)):
        stats = call.voice_client.receive_stats
        phases = []
        for change in (None, call.voice.downgrade, call.voice.upgrade):
            if change is not None:
                change(call.guild_id, call.channel_id)
                await call.settled()
            before = (stats.dave.decrypted, stats.dave.passthrough)
            sent = await speak(call, bob, 1.0, seed=70 + len(phases))
            heard = await call.recorder.wait_utterances(bob.user_id, len(phases) + 1)
            assert_heard(heard[-1], bob, sent)
            speech = len(sent) - 5  # all but the trailing Opus silence, which DAVE never encrypts
            phases.append((stats.dave.decrypted - before[0], stats.dave.passthrough - before[1], speech))
        (enc0, plain0, n0), (enc1, plain1, n1), (enc2, plain2, n2) = phases
        assert (enc0, plain0) == (n0, 0), phases
        assert (enc1, plain1) == (0, n1), phases
        assert (enc2, plain2) == (n2, 0), phases
        assert call.voice_client._connection.dave_protocol_version == 1
        assert not stats.dave.failures, stats.snapshot()
        assert_clean(call)

