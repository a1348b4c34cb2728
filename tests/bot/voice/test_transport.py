import os
import struct

import nacl.bindings
import pytest

from bot.voice.transport import (
    AES256_GCM_RTPSIZE,
    XCHACHA20_RTPSIZE,
    MalformedPacketError,
    TransportAuthError,
    make_decryptor,
)
from tests.fakes.voice.packets import AES, XCHACHA, seal

KEY = os.urandom(32)
OPUS = b"\xfc" + bytes(range(130))


@pytest.mark.parametrize("mode", [XCHACHA, AES])
@pytest.mark.parametrize(
    ("extension", "csrcs"),
    [
        (None, 0),
        (b"\x10\xff\x00\x00", 0),
        (b"\x10\xff\x51\x02" + b"\x22\x01\x00\x00", 0),
        (b"\x10\x7f\x00\x00", 3),
    ],
)
def test_decrypt_returns_the_opus_payload_with_extension_elements_stripped(mode, extension, csrcs):
    packet = seal(KEY, 9, 960 * 9, 2222, OPUS, counter=77, mode=mode, extension=extension, csrcs=csrcs)
    assert make_decryptor(mode, KEY).decrypt(packet) == OPUS


def test_decryptor_accepts_discord_py_key_lists_and_is_reusable():
    decryptor = make_decryptor(XCHACHA20_RTPSIZE, list(KEY))
    for i in range(3):
        payload = bytes([0xFC, i]) * 10
        assert decryptor.decrypt(seal(KEY, i, i * 960, 5, payload, counter=i)) == payload


@pytest.mark.parametrize("mode", [XCHACHA, AES])
def test_rtp_padding_is_removed(mode):
    packet = seal(KEY, 1, 960, 5, OPUS, mode=mode, padding=4)
    assert make_decryptor(mode, KEY).decrypt(packet) == OPUS


@pytest.mark.parametrize("mode", [XCHACHA20_RTPSIZE, AES256_GCM_RTPSIZE])
def test_wrong_key_and_tampering_raise_auth_error(mode):
    packet = seal(KEY, 1, 960, 5, OPUS, mode=mode)
    with pytest.raises(TransportAuthError):
        make_decryptor(mode, os.urandom(32)).decrypt(packet)
    decryptor = make_decryptor(mode, KEY)
    header_flipped = packet[:3] + bytes([packet[3] ^ 1]) + packet[4:]  # seq is authenticated (AAD)
    with pytest.raises(TransportAuthError):
        decryptor.decrypt(header_flipped)
    body_flipped = packet[:20] + bytes([packet[20] ^ 1]) + packet[21:]
    with pytest.raises(TransportAuthError):
        decryptor.decrypt(body_flipped)
    assert decryptor.decrypt(packet) == OPUS  # failures leave the decryptor usable


@pytest.mark.parametrize("cut", [5, 12, 15, 31])
def test_truncated_packets_raise_malformed(cut):
    packet = seal(KEY, 1, 960, 5, OPUS)
    with pytest.raises(MalformedPacketError):
        make_decryptor(XCHACHA, KEY).decrypt(packet[:cut])


def test_extension_length_beyond_the_payload_is_malformed():
    # The preamble claims 40 words of extension elements; the plaintext holds 8 bytes. Sealed with
    # that preamble as AAD, so authentication passes and the length check is what must refuse it.
    aad = struct.pack(">BBHIIHH", 0x90, 0x78, 1, 960, 5, 0xBEDE, 40)
    plain = b"\x10\xff\x00\x00" + b"\xfc\x01\x02\x03"
    nonce4 = struct.pack(">I", 0)
    packet = aad + nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        plain, aad, nonce4 + bytes(20), KEY
    )
    with pytest.raises(MalformedPacketError):
        make_decryptor(XCHACHA, KEY).decrypt(packet + nonce4)


def test_unknown_mode_and_bad_key_are_refused():
    with pytest.raises(ValueError, match="unsupported"):
        make_decryptor("xsalsa20_poly1305_lite", KEY)
    with pytest.raises(ValueError, match="32 bytes"):
        make_decryptor(XCHACHA, b"short")


def test_interoperates_with_the_fake_voice_server_when_present():
    fake_rtp = pytest.importorskip("tests.fakes.voice.rtp")
    try:
        cipher = fake_rtp.TransportCipher(fake_rtp.XCHACHA20, KEY)
        header = fake_rtp.RtpHeader(
            sequence=4, timestamp=3840, ssrc=2222, extension=fake_rtp.audio_level_extension()
        )
        packet = fake_rtp.seal_rtp(cipher, header, OPUS, 4)
    except (AttributeError, TypeError) as exc:  # the fake is still being written
        pytest.skip(f"fake voice server API differs: {exc}")
    assert make_decryptor(XCHACHA, KEY).decrypt(packet) == OPUS
