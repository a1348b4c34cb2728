import struct

import pytest

from bot.voice import rtp
from tests.fakes.voice.packets import seal


def test_audio_packet_is_audio_and_header_fields_unpack():
    packet = seal(bytes(32), seq=65535, ts=123456, ssrc=2222, payload=b"\xfc" * 20)
    assert rtp.classify(packet) == rtp.AUDIO
    assert rtp.unpack_seq_ts_ssrc(packet, 2) == (65535, 123456, 2222)
    assert rtp.clear_header_length(packet) == 16
    assert rtp.extension_payload_bytes(packet) == 4


def test_csrcs_and_no_extension_change_the_clear_header_length():
    packet = seal(bytes(32), 1, 960, 5, b"\xfc" * 20, extension=None, csrcs=2)
    assert rtp.clear_header_length(packet) == 20
    assert rtp.extension_payload_bytes(packet) == 0


@pytest.mark.parametrize("packet_type", [200, 201, 202, 203, 204])
def test_rtcp_is_classified_as_rtcp(packet_type):
    report = struct.pack(">BBHI", 0x81, packet_type, 7, 2222) + bytes(24)
    assert rtp.classify(report) == rtp.RTCP


def test_ip_discovery_reply_is_recognised():
    reply = bytearray(74)
    struct.pack_into(">HHI", reply, 0, 2, 70, 1111)
    assert rtp.classify(bytes(reply)) == rtp.IP_DISCOVERY


def test_other_payload_types_junk_and_short_datagrams():
    assert rtp.classify(seal(bytes(32), 1, 1, 1, b"x" * 20, payload_type=0x65)) == rtp.OTHER_PAYLOAD
    assert rtp.classify(b"\x00" * 40) == rtp.NOT_RTP
    assert rtp.classify(b"\x80") == rtp.TRUNCATED
    assert rtp.classify(b"\x90\x78" + bytes(12)) == rtp.TRUNCATED


@pytest.mark.parametrize(
    ("seq", "ref", "delta"), [(0, 65535, 1), (65535, 0, -1), (5, 5, 0), (100, 90, 10), (32767, 0, 32767)]
)
def test_seq_delta_wraps_around(seq, ref, delta):
    assert rtp.seq_delta(seq, ref) == delta
