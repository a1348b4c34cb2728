"""RTP packets as Discord's voice servers send and accept them, with transport encryption.

Discord's ``*_rtpsize`` modes (https://discord.com/developers/docs/topics/voice-connections
#transport-encryption-modes) authenticate the fixed RTP header, the CSRCs and the 4-byte header
extension *preamble* (profile + length) as AAD, and encrypt everything after it, including the
extension's elements. The nonce is a 32-bit big-endian counter appended to the packet and
zero-padded to the cipher's nonce size. Real clients' packets carry a one-byte (0xBEDE) header
extension, so a receiver that assumes a bare 12-byte header breaks on real traffic; the fake can
send both shapes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import nacl.secret
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

XCHACHA20 = "aead_xchacha20_poly1305_rtpsize"
AES256_GCM = "aead_aes256_gcm_rtpsize"
SUPPORTED_MODES: tuple[str, ...] = (AES256_GCM, XCHACHA20)  # Discord lists AES first

RTP_VERSION_BITS = 0x80
RTP_EXTENSION_BIT = 0x10
RTP_PADDING_BIT = 0x20
OPUS_PAYLOAD_TYPE = 0x78  # 120: the dynamic type Discord uses for Opus
# Discord's video codecs and their RTX (retransmission) payload types, as its clients list them in
# SELECT_PROTOCOL's ``codecs``: H264 101/102, VP8 103/104, VP9 105/106.
VP8_PAYLOAD_TYPE = 103
VP8_RTX_PAYLOAD_TYPE = 104
ONE_BYTE_EXTENSION_PROFILE = 0xBEDE
SAMPLES_PER_FRAME = 960  # 20 ms at 48 kHz
OPUS_SILENCE = b"\xf8\xff\xfe"


@dataclass(frozen=True, slots=True)
class RtpHeader:
    sequence: int
    timestamp: int
    ssrc: int
    payload_type: int = OPUS_PAYLOAD_TYPE
    marker: bool = False
    # Elements of a one-byte header extension (already padded to 32-bit words), or None.
    extension: bytes | None = None
    # RFC 3550 padding: this many bytes (the last one holding the count) end the payload, inside
    # the encryption. 0 = none. Discord.Net saw 3-15 % false DAVE failures before stripping it.
    padding: int = 0

    def authenticated_part(self) -> bytes:
        """The bytes sent in the clear and used as AAD: fixed header plus extension preamble."""
        first = RTP_VERSION_BITS | (RTP_EXTENSION_BIT if self.extension is not None else 0)
        first |= RTP_PADDING_BIT if self.padding else 0
        second = (0x80 if self.marker else 0) | self.payload_type
        head = struct.pack(">BBHII", first, second, self.sequence & 0xFFFF,
                           self.timestamp & 0xFFFFFFFF, self.ssrc)
        if self.extension is None:
            return head
        if len(self.extension) % 4:
            raise ValueError("RTP header extension must be padded to 32-bit words")
        return head + struct.pack(">HH", ONE_BYTE_EXTENSION_PROFILE, len(self.extension) // 4)


def audio_level_extension(level_dbov: int = 30, *, voice_activity: bool = True) -> bytes:
    """RFC 6464 client-to-mixer audio level in a one-byte extension element (id 1), padded."""
    return bytes([0x10, (0x80 if voice_activity else 0) | (level_dbov & 0x7F), 0, 0])


@dataclass(frozen=True, slots=True)
class ParsedRtp:
    header: RtpHeader
    aad: bytes
    ciphertext: bytes
    nonce_suffix: bytes


def parse_rtp(packet: bytes) -> ParsedRtp:
    """Split an encrypted rtpsize packet into clear header, ciphertext and nonce suffix."""
    if len(packet) < 12 + 4 or packet[0] >> 6 != 2:
        raise ValueError("not an RTP packet")
    csrc_count = packet[0] & 0x0F
    clear = 12 + 4 * csrc_count
    words = 0
    if packet[0] & RTP_EXTENSION_BIT:
        words = struct.unpack_from(">H", packet, clear + 2)[0]
        clear += 4
    if len(packet) < clear + 4:
        raise ValueError("truncated RTP packet")
    _, second, sequence, timestamp, ssrc = struct.unpack_from(">BBHII", packet, 0)
    # The extension elements are encrypted; we only know their length until decryption.
    header = RtpHeader(sequence, timestamp, ssrc, second & 0x7F, bool(second & 0x80),
                       bytes(4 * words) if packet[0] & RTP_EXTENSION_BIT else None)
    return ParsedRtp(header, packet[:clear], packet[clear:-4], packet[-4:])


class TransportCipher:
    """One voice session's transport AEAD, both directions, for either rtpsize mode."""

    def __init__(self, mode: str, secret_key: bytes) -> None:
        if mode not in SUPPORTED_MODES:
            raise ValueError(f"unsupported voice encryption mode {mode!r}")
        self.mode = mode
        self._key = bytes(secret_key)

    def _nonce(self, suffix: bytes) -> bytes:
        return suffix + bytes((24 if self.mode == XCHACHA20 else 12) - len(suffix))

    def seal(self, aad: bytes, plaintext: bytes, counter: int) -> bytes:
        suffix = struct.pack(">I", counter & 0xFFFFFFFF)
        nonce = self._nonce(suffix)
        if self.mode == XCHACHA20:
            sealed = nacl.secret.Aead(self._key).encrypt(plaintext, aad, nonce).ciphertext
        else:
            sealed = AESGCM(self._key).encrypt(nonce, plaintext, aad)
        return aad + sealed + suffix

    def open(self, packet: bytes) -> tuple[RtpHeader, bytes]:
        """Return the header (with decrypted extension elements) and the media payload."""
        parsed = parse_rtp(packet)
        nonce = self._nonce(parsed.nonce_suffix)
        if self.mode == XCHACHA20:
            plain = nacl.secret.Aead(self._key).decrypt(parsed.ciphertext, parsed.aad, nonce)
        else:
            plain = AESGCM(self._key).decrypt(nonce, parsed.ciphertext, parsed.aad)
        ext_len = len(parsed.header.extension or b"")
        header = parsed.header
        if header.extension is not None:
            header = RtpHeader(header.sequence, header.timestamp, header.ssrc, header.payload_type,
                               header.marker, plain[:ext_len])
        return header, plain[ext_len:]


def seal_rtp(cipher: TransportCipher, header: RtpHeader, payload: bytes, counter: int) -> bytes:
    """Build one encrypted packet the way Discord relays a user's audio."""
    if not 0 <= header.padding <= 255:
        raise ValueError("RTP padding is 0-255 bytes")
    pad = bytes(header.padding - 1) + bytes([header.padding]) if header.padding else b""
    return cipher.seal(header.authenticated_part(), (header.extension or b"") + payload + pad, counter)


def rtcp_receiver_report(ssrc: int) -> bytes:
    """A minimal RTCP RR (payload type 201) with no report blocks, as Discord occasionally sends."""
    return struct.pack(">BBHI", 0x80, 201, 1, ssrc)


def ip_discovery_response(ssrc: int, address: str, port: int) -> bytes:
    """The 74-byte IP discovery reply: type 2, length 70, ssrc, NUL-padded address, port."""
    packet = bytearray(74)
    struct.pack_into(">HHI", packet, 0, 2, 70, ssrc)
    raw = address.encode("ascii")
    packet[8 : 8 + len(raw)] = raw
    struct.pack_into(">H", packet, 72, port)
    return bytes(packet)


def is_ip_discovery_request(data: bytes) -> bool:
    return len(data) == 74 and struct.unpack_from(">H", data, 0)[0] == 1
