import logging
from types import SimpleNamespace

import pytest

from bot.voice import dave
from bot.voice.dave import DaveFrameDecryptor
from bot.voice.stats import RateLimitedLog
from tests.fakes.voice.packets import ALICE_ID, BOB_ID, SILENCE, dave_group

OPUS = b"\xfc" + bytes(range(60))


@pytest.fixture(scope="module")
def group():
    return dave_group()


def layer(session, version=1):
    connection = SimpleNamespace(dave_session=session, dave_protocol_version=version)
    return DaveFrameDecryptor(connection), connection


def test_member_frames_decrypt_with_the_real_group(group):
    decryptor, _ = layer(group.bot)
    for i in range(5):
        frame = bytes([0xFC, i]) * 30
        assert decryptor.open(ALICE_ID, group.member.encrypt_opus(frame)) == frame
    assert decryptor.stats.decrypted == 5 and decryptor.stats.failed == 0


class NoCallSession:
    ready = True

    def decrypt(self, *args):
        raise AssertionError("silence must not reach davey")

    def can_passthrough(self, user_id):
        raise AssertionError


def test_silence_frame_passes_without_touching_davey():
    decryptor, _ = layer(NoCallSession())
    assert decryptor.open(ALICE_ID, SILENCE) == SILENCE
    assert decryptor.stats.silence == 1


def test_encrypted_frames_are_dropped_while_the_session_is_not_ready(group):
    encrypted = group.member.encrypt_opus(OPUS)
    for session in (None, SimpleNamespace(ready=False)):
        decryptor, _ = layer(session)
        assert decryptor.open(ALICE_ID, encrypted) is None
        assert decryptor.stats.failures == {dave.NOT_READY: 1}


def test_plain_frames_pass_without_e2ee_and_while_downgraded(group):
    decryptor, _ = layer(None, version=0)
    assert decryptor.open(ALICE_ID, OPUS) == OPUS
    downgraded, _ = layer(group.bot, version=0)
    assert downgraded.open(ALICE_ID, OPUS) == OPUS
    assert decryptor.stats.passthrough == downgraded.stats.passthrough == 1


def test_encrypted_frames_still_decrypt_during_a_downgrade(group):
    decryptor, _ = layer(group.bot, version=0)
    assert decryptor.open(ALICE_ID, group.member.encrypt_opus(OPUS)) == OPUS


def test_unencrypted_frame_in_an_e2ee_call_is_refused_outside_passthrough():
    fresh = dave_group()
    decryptor, _ = layer(fresh.bot)
    assert decryptor.open(ALICE_ID, OPUS) is None
    assert decryptor.stats.failures == {dave.UNENCRYPTED: 1}
    fresh.bot.set_passthrough_mode(True, 10)  # what discord.py does around an upgrade transition
    assert decryptor.open(ALICE_ID, OPUS) == OPUS


def test_user_not_in_group_and_bad_frames_are_counted_by_reason(group):
    decryptor, _ = layer(group.bot)
    encrypted = group.member.encrypt_opus(OPUS)
    assert decryptor.open(BOB_ID, encrypted) is None
    tampered = bytes([encrypted[0] ^ 0x40]) + encrypted[1:]
    assert decryptor.open(ALICE_ID, tampered) is None
    assert decryptor.open(ALICE_ID, encrypted) == OPUS
    assert decryptor.open(ALICE_ID, encrypted) is None  # replayed nonce
    assert decryptor.stats.failures == {dave.USER_NOT_IN_GROUP: 1, dave.NO_VALID_CRYPTOR: 2}


def test_frames_from_another_group_fail(group):
    other = dave_group()
    decryptor, _ = layer(group.bot)
    assert decryptor.open(ALICE_ID, other.member.encrypt_opus(OPUS)) is None
    assert decryptor.stats.failures == {dave.NO_VALID_CRYPTOR: 1}


def test_failure_reason_mapping():
    assert dave.failure_reason(ValueError("Failed to decrypt: NoDecryptorForUser")) == dave.USER_NOT_IN_GROUP
    assert dave.failure_reason(RuntimeError("boom")) == dave.DECRYPT_ERROR


def test_failures_are_logged_at_a_limited_rate(caplog):
    now = [0.0]
    log = RateLimitedLog(logging.getLogger("test.dave"), interval=10.0, clock=lambda: now[0])
    decryptor = DaveFrameDecryptor(SimpleNamespace(dave_session=None, dave_protocol_version=1), log=log)
    encrypted = OPUS + b"\x05\xfa\xfa"
    with caplog.at_level(logging.DEBUG, logger="test.dave"):
        for _ in range(100):
            decryptor.open(ALICE_ID, encrypted)
        now[0] = 11.0
        decryptor.open(ALICE_ID, encrypted)
    assert decryptor.stats.failures == {dave.NOT_READY: 101}
    assert len(caplog.records) == 2
    assert "99 similar suppressed" in caplog.records[1].getMessage()


def test_plain_frames_are_dropped_while_an_e2ee_call_has_no_ready_group():
    # Joining or reconnecting to a DAVE call: the members encrypt, so a plain frame is not theirs.
    for session in (None, SimpleNamespace(ready=False)):
        decryptor, _ = layer(session, version=1)
        assert decryptor.open(ALICE_ID, OPUS) is None
        assert decryptor.stats.failures == {dave.UNENCRYPTED: 1} and decryptor.stats.passthrough == 0
        assert decryptor.open(ALICE_ID, SILENCE) == SILENCE  # the silence frame is never encrypted
