"""RTP header facts the receive path needs, read straight from the datagram bytes.

Discord voice UDP carries three kinds of datagrams on the same socket: RTP audio (version 2,
payload type 120 = Opus), RTCP sender/receiver reports (packet types 200-204 in byte 1, which read
as payload types 72-76 once the marker bit is masked off), and the 74-byte IP-discovery replies
(bytes 0-1 = 0x0002, so the RTP version bits read as 0). Only the first is audio.

Nothing here builds an object per packet: callers get ints and one ``struct`` unpack.
"""

from __future__ import annotations

import struct
from typing import Final

from bot.audio.frames import FRAME_SAMPLES, OPUS_SILENCE

RTP_VERSION_BITS: Final = 0x80
FIXED_HEADER_BYTES: Final = 12
EXTENSION_PREAMBLE_BYTES: Final = 4  # profile (0xBEDE) + length in 32-bit words
NONCE_SUFFIX_BYTES: Final = 4  # the *_rtpsize modes append a 32-bit nonce counter
OPUS_PAYLOAD_TYPE: Final = 120  # Discord's dynamic payload type for Opus (0x78)
RTCP_PAYLOAD_TYPES: Final = range(72, 77)  # 200-204 with the top bit masked off
IP_DISCOVERY_BYTES: Final = 74
SAMPLES_PER_FRAME: Final = FRAME_SAMPLES  # RTP timestamp step of a 20 ms frame at 48 kHz
OPUS_SILENCE_FRAME: Final = OPUS_SILENCE  # sent (never DAVE-encrypted) when a speaker stops

# Datagram kinds returned by ``classify``.
AUDIO: Final = 0
RTCP: Final = 1
IP_DISCOVERY: Final = 2
NOT_RTP: Final = 3
OTHER_PAYLOAD: Final = 4
TRUNCATED: Final = 5

# seq (u16), timestamp (u32), ssrc (u32) at byte offset 2: one tuple per packet, no header object.
unpack_seq_ts_ssrc = struct.Struct(">HII").unpack_from


def classify(data: bytes) -> int:
    """Which kind of datagram this is; only ``AUDIO`` is worth decrypting."""
    n = len(data)
    if n < 2:
        return TRUNCATED
    if (data[0] & 0xC0) != RTP_VERSION_BITS:
        return IP_DISCOVERY if n == IP_DISCOVERY_BYTES and data[0] == 0 and data[1] == 2 else NOT_RTP
    payload_type = data[1] & 0x7F
    if payload_type in RTCP_PAYLOAD_TYPES:
        return RTCP
    if payload_type != OPUS_PAYLOAD_TYPE:
        return OTHER_PAYLOAD
    if n < FIXED_HEADER_BYTES + header_extra_bytes(data[0]) + NONCE_SUFFIX_BYTES:
        return TRUNCATED
    return AUDIO


def header_extra_bytes(first_byte: int) -> int:
    """Bytes after the fixed 12 that are sent in the clear: CSRCs plus the extension preamble."""
    return ((first_byte & 0x0F) << 2) + (EXTENSION_PREAMBLE_BYTES if first_byte & 0x10 else 0)


def clear_header_length(data: bytes) -> int:
    """Length of the authenticated, unencrypted prefix (the AAD of the ``*_rtpsize`` modes)."""
    return FIXED_HEADER_BYTES + header_extra_bytes(data[0])


def extension_payload_bytes(data: bytes) -> int:
    """Bytes of header-extension elements at the start of the decrypted payload (0 if none)."""
    first = data[0]
    if not first & 0x10:
        return 0
    at = FIXED_HEADER_BYTES + ((first & 0x0F) << 2) + 2
    return ((data[at] << 8) | data[at + 1]) << 2


def seq_delta(seq: int, reference: int) -> int:
    """Signed distance from ``reference`` to ``seq`` on the 16-bit sequence circle (-32768..32767)."""
    d = (seq - reference) & 0xFFFF
    return d - 0x10000 if d >= 0x8000 else d
