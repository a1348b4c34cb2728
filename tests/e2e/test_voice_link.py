"""Issue 15 ("the voice link") end to end: what real Discord does to a receiver, through the fake
voice server (voice gateway v8 over TLS, UDP, real ``davey`` DAVE groups) into the real bot.

Shares the rig and the tolerances of ``test_hearing.py``: every heard utterance must match what
was sent (``assert_heard``), and nothing undecodable may ever reach the Opus decoder
(``decode_errors == 0``). Timing is never asserted; ``GUARD_S`` only turns a hang into a failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import numpy as np
import pytest

from bot.audio.opus import OpusDecoder
from bot.audio.resample import AlreadyMono16k
from bot.voice.client import VoxcordVoiceClient
from tests.e2e.hearing_support import GUARD_S, best_match, call_with, voice
from tests.e2e.test_hearing import assert_clean, assert_heard, speak
from tests.fakes.voice.audio import encode_opus

log = logging.getLogger(__name__)


@pytest.fixture
def env(fake_discord, fake_voice, fake_discord_env):
    return fake_discord, fake_voice


async def test_padded_packets_with_dave_on_are_heard_exactly(env, tmp_path: Path) -> None:
    """RTP padding (P bit, the pad inside the transport encryption) on two packets in three, 1 to
    200 bytes: the padding must be stripped before the DAVE frame is parsed (its trailer is read
    from the end), or DAVE fails on every padded frame (discord.js PR #11449)."""
    async with call_with(*env, tmp_path, speakers=1) as (call, (bob,)):
        frames = len(encode_opus(voice(2.0, seed=81))) + 5
        padding = {i: 1 + (i * 37) % 200 for i in range(frames) if i % 3}
        sent = await speak(call, bob, 2.0, seed=81, padding=padding)
        [heard] = await call.recorder.wait_utterances(bob.user_id, 1)

        stats = call.voice_client.receive_stats
        assert not stats.dave.failures and stats.truncated == 0, stats.snapshot()
        assert stats.dave.decrypted == frames - 5 and stats.decoded == frames, stats.snapshot()
        assert_heard(heard, bob, sent)
        assert_clean(call)


async def test_a_listen_only_bot_is_still_heard_after_a_long_silence(env, tmp_path: Path, monkeypatch) -> None:
    """The fake, like Discord, stops relaying media to a UDP endpoint that has sent nothing for
    ``udp_idle_timeout``. The bot only listens (it never plays), so only its keepalive keeps the
    media flowing. Scaled down: idle timeout 1 s (Discord: ~60 s), keepalive every 0.2 s (5 s),
    silence 3 s (minutes). Bob is heard before and after the silence; nothing was withheld."""
    monkeypatch.setattr(VoxcordVoiceClient, "keepalive_interval", 0.2)
    fake, voice_server = env
    async with call_with(fake, voice_server, tmp_path, speakers=1) as (call, (bob,)):
        first = await speak(call, bob, 1.0, seed=82)
        [heard] = await call.recorder.wait_utterances(bob.user_id, 1)
        assert_heard(heard, bob, first)

        voice_server.udp_idle_timeout = 1.0
        session = voice_server.session(call.guild_id)
        keepalives = session.keepalives
        await asyncio.sleep(3.0)  # the silence: nobody talks, the bot plays nothing

        later = await speak(call, bob, 1.0, seed=83)
        heard_later = await call.recorder.wait_utterances(bob.user_id, 2)
        assert session.withheld == 0
        assert session.keepalives - keepalives >= 3  # ≥ 1 per idle timeout, with margin
        assert_heard(heard_later[-1], bob, later)
        assert call.voice_client.keepalive.failed == 0
        assert_clean(call)


async def test_screen_share_video_never_reaches_the_opus_decoder(env, tmp_path: Path) -> None:
    """Bob goes live (VIDEO op 12, then VP8 on his video SSRC and RTX on the next, DAVE-encrypted
    as video) while talking: every video datagram is counted as not-audio before decryption,
    none is decrypted or decoded, and his speech is heard exactly."""
    async with call_with(*env, tmp_path, speakers=1) as (call, (bob,)):
        stats = call.voice_client.receive_stats
        await call.announced(bob)
        video = await asyncio.wait_for(bob.share_screen(30, seed=84), GUARD_S)
        sent = await speak(call, bob, 1.0, seed=85)
        more_video = await asyncio.wait_for(bob.share_screen(10, seed=86), GUARD_S)
        [heard] = await call.recorder.wait_utterances(bob.user_id, 1)
        await call.recorder.wait_for(lambda: stats.other_payload == video + more_video, what="all video counted")

        assert stats.decoded == len(sent) and stats.decrypted == len(sent), stats.snapshot()
        assert not stats.dave.failures and stats.unknown_ssrc == 0, stats.snapshot()
        assert call.voice_client.receiver.user_for_ssrc(bob.video_ssrc) is None
        assert_heard(heard, bob, sent)
        assert_clean(call)


async def test_an_unencrypted_frame_while_dave_is_on_is_dropped_and_counted(env, tmp_path: Path) -> None:
    """With DAVE on and settled, Bob's client (or anyone forging his SSRC) sends plain Opus frames
    between his real ones, each claiming the sequence number of the real frame after it: each is
    counted as a DAVE failure and never decoded; the real frame still takes its place."""
    async with call_with(*env, tmp_path, speakers=1) as (call, (bob,)):
        stats = call.voice_client.receive_stats
        opus = encode_opus(voice(1.0, seed=87))
        await call.announced(bob)
        plain = 0
        sent = []
        for start in range(0, len(opus), 10):
            sent += await bob.speak_opus(opus[start : start + 10], realtime=False, trailing_silence=0)
            await bob.send_rtp(opus[start], dave=False)
            plain += 1
        sent += await bob.speak_opus([], realtime=False)  # the trailing silence
        await call.recorder.wait_utterances(bob.user_id, 1)

        assert stats.dave.failures.get("unencrypted") == plain, stats.snapshot()
        assert stats.dave.passthrough == 0, stats.snapshot()
        assert stats.decoded == len(sent), stats.snapshot()  # the plain frames never were
        assert_clean(call)


@pytest.mark.parametrize("committer", ["simulated", "bot"])
async def test_a_member_leaving_rekeys_and_the_others_stay_heard_without_a_gap(
    env, tmp_path: Path, committer: str
) -> None:
    """Bob talks (real time) while Carol leaves: CLIENT_DISCONNECT (op 13), then the fake proposes
    her Remove as the external sender and a member commits it (a real davey commit with its
    UpdatePath): a remaining simulated member (announced to the bot with op 29), or the bot itself
    (op 27 → its op 28). The group moves to a new epoch without Carol; Bob's utterance arrives
    whole, not a frame concealed, and Alice and Bob are heard afterwards. The commit reaches the
    bot 100 ms after the members (davey peers) switched keys: ~5 of Bob's frames arrive that the
    bot cannot open yet."""
    fake, voice_server = env
    voice_server.committer = committer  # the channel's group is made with these when members join
    voice_server.dave_relay_delay = 0.1
    async with call_with(fake, voice_server, tmp_path, speakers=3) as (call, (bob, alice, carol)):
        state = call.voice_client._connection
        epoch = state.dave_session.epoch
        stats = call.voice_client.receive_stats
        talking = asyncio.create_task(speak(call, bob, 3.0, seed=88, realtime=True))
        await asyncio.sleep(1.0)  # mid-sentence
        await call.fake.set_voice_state(call.guild_id, carol.user_id, None)
        call.voice.remove_speaker(call.guild_id, call.channel_id, carol.user_id)
        await call.settled()
        sent_bob = await talking
        [heard_bob] = await call.recorder.wait_utterances(bob.user_id, 1)

        assert state.dave_session.epoch == epoch + 1
        assert str(carol.user_id) not in state.dave_session.get_user_ids()
        log.info("remove mid-speech: DAVE failures %s, concealed %d", stats.dave.failures, stats.concealed)
        assert not stats.dave.failures and stats.concealed == 0, stats.snapshot()
        assert_heard(heard_bob, bob, sent_bob)

        after = await asyncio.gather(speak(call, alice, 1.0, seed=89), speak(call, bob, 1.0, seed=90))
        for speaker, sent, count in ((alice, after[0], 1), (bob, after[1], 2)):
            heard = await call.recorder.wait_utterances(speaker.user_id, count)
            assert_heard(heard[-1], speaker, sent)
        assert stats.dave.passthrough == 0 and not stats.dave.failures, stats.snapshot()
        assert_clean(call)


@pytest.mark.parametrize("change", ["resume", "full_reconnect", "voice_server_change"])
async def test_hearing_resumes_after_a_reconnect_mid_speech_without_a_new_speaking(
    env, tmp_path: Path, change: str, monkeypatch
) -> None:
    """Bob is mid-sentence when the bot's voice connection is replaced: a resume (close 4015,
    which the bot performs as a reconnect), a full reconnect (4006: new session, new key, DAVE
    group re-formed) or a voice server change (VOICE_SERVER_UPDATE with a new endpoint; Bob's
    client moves too and gets a new SSRC). Bob keeps talking and, like Discord, nobody sends
    SPEAKING again. Hearing resumes by itself (the SSRC that never was announced is identified by
    the DAVE key that opens it), nothing undecodable is decoded, and his next utterance is heard
    exactly. The drop → first frame heard time is logged, not asserted; what is asserted is that
    the dropped connection (4006, 4015) is retried through the bot's backoff with no wait at all
    (discord.py alone sleeps a random 0–2 s first, which could break the 2 s goal)."""
    backoffs: list[float] = []

    async def recording_sleep(delay: float) -> None:
        backoffs.append(delay)
        await asyncio.sleep(0)

    monkeypatch.setattr(VoxcordVoiceClient, "reconnect_sleep", recording_sleep)
    async with call_with(*env, tmp_path, speakers=1) as (call, (bob,)):
        await speak(call, bob, 1.0, seed=91)
        await call.recorder.wait_utterances(bob.user_id, 1)
        stats = call.voice_client.receive_stats
        arrivals = call.hearing.arrivals[bob.user_id]
        old_ssrc, heard_before = bob.ssrc, len(arrivals)

        opus = encode_opus(voice(4.0, seed=92))
        talking = asyncio.create_task(bob.speak_opus(opus, realtime=True))
        await call.recorder.wait_for(lambda: len(arrivals) > heard_before + 10, what="Bob mid-sentence")
        changed_at = time.monotonic()  # the clock TimedHearing stamps arrivals with
        announcements, old_session = bob.announcements, call.voice.session(call.guild_id)
        if change == "voice_server_change":
            await call.voice.move()
            await call.fake.move_voice_server(call.guild_id)
        else:
            await call.voice.drop_connection(call.guild_id, code=4015 if change == "resume" else 4006)
        await asyncio.wait_for(_reconnected(call, old_session), GUARD_S)
        heard_at_reconnect = len(arrivals)  # the fake holds Bob's frames until the new DAVE group
        await asyncio.wait_for(talking, GUARD_S)
        await call.recorder.wait_for(lambda: len(arrivals) > heard_at_reconnect + 5,
                                     what="Bob heard again after the change")
        log.warning("%s mid-speech: first frame of the new connection heard %.3f s after the change "
                    "(not asserted: wall time)", change, arrivals[heard_at_reconnect] - changed_at)

        assert backoffs == ([] if change == "voice_server_change" else [0.0])
        assert (bob.ssrc != old_ssrc) == (change == "voice_server_change")
        assert bob.announcements == announcements  # no SPEAKING since the change
        assert call.voice_client.receiver.user_for_ssrc(bob.ssrc) == bob.user_id
        assert stats.identified_ssrcs == (1 if change == "voice_server_change" else 0), stats.snapshot()
        assert stats.dave.passthrough == 0, stats.snapshot()
        await call.recorder.wait_for(lambda: not call.hearing.speaking(bob.user_id), what="the cut utterance")

        done = len(call.recorder.finished(bob.user_id))
        sent = await speak(call, bob, 1.5, seed=93)
        heard = await call.recorder.wait_utterances(bob.user_id, done + 1)
        assert_heard(heard[-1], bob, sent)
        assert_clean(call)


async def _reconnected(call, old):
    """The bot's next voice connection is up: a new session (the bot left and rejoined), or the
    same one identified again (a move)."""
    while True:
        session = await call.voice.wait_connected(call.guild_id)
        if session is not old or session.identifies >= 2:
            return session
        await asyncio.sleep(0.01)


async def test_with_voice_decode_16k_the_bot_hears_through_libopus_own_16k_decode(env, tmp_path: Path) -> None:
    """``VOICE_DECODE=16k`` end to end: the bot's voice client decodes straight to 16 kHz mono.
    Bob's utterance matches his packets decoded by a 16 kHz mono libopus decoder (the same
    decoder, so ≥ 0.99 like the 48k path's exactness), at 640 bytes per frame and every frame
    decoded; the soxr path would differ from this reference above 7 kHz."""
    async with call_with(*env, tmp_path, speakers=1, settings={"voice_decode": "16k"}) as (call, (bob,)):
        assert type(call.voice_client).resampler_factory is AlreadyMono16k
        sent = await speak(call, bob, 2.0, seed=94)
        [heard] = await call.recorder.wait_utterances(bob.user_id, 1)

        decoder = OpusDecoder(sample_rate=16_000, channels=1)
        try:
            reference = np.frombuffer(b"".join(decoder.decode(f.opus) for f in bob.sent), dtype=np.int16)
        finally:
            decoder.close()
        match = best_match(reference.astype(np.float64), heard.audio)
        assert match.correlation >= 0.99, match
        assert abs(heard.seconds - len(sent) * 0.02) <= 3 * 0.02, (heard.seconds, len(sent))
        stats = call.voice_client.receive_stats
        assert stats.decoded == len(sent) and stats.concealed == 0, stats.snapshot()
        assert_clean(call)
