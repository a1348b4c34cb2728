"""Transport decryption of Discord voice RTP (the ``*_rtpsize`` AEAD modes).

Wire layout (https://discord.com/developers/docs/topics/voice-connections#transport-encryption-modes):

    | fixed header 12 | CSRCs 4*cc | ext preamble 4 (0xBEDE, len) | ciphertext + tag 16 | nonce 4 |
    |<------------------ AAD (sent in clear) ------------------->|

The extension *elements* (``len`` 32-bit words) are encrypted with the payload, so they sit at the
start of the plaintext and are stripped here. The nonce is the 4-byte counter zero-padded to the
cipher's nonce size (24 bytes for XChaCha20, 12 for AES-GCM).

XChaCha20-Poly1305 calls libsodium through PyNaCl's own cffi module with preallocated output,
length and nonce buffers: measured 1.4 µs per 131-byte packet against 3.4 µs through
``nacl.bindings`` (which allocates three buffers and validates arguments on every call) and ~7 µs
through ``nacl.secret.Aead``. Each decryptor instance is used from one thread only (the voice
socket reader), which is what makes reusing the buffers safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Protocol

XCHACHA20_RTPSIZE: Final = "aead_xchacha20_poly1305_rtpsize"
AES256_GCM_RTPSIZE: Final = "aead_aes256_gcm_rtpsize"
SUPPORTED_MODES: Final = (XCHACHA20_RTPSIZE, AES256_GCM_RTPSIZE)

_TAG_BYTES: Final = 16
_MAX_DATAGRAM: Final = 2048  # discord.py's SocketReader reads at most this much


class TransportError(Exception):
    """A datagram could not be turned into an RTP payload."""


class TransportAuthError(TransportError):
    """Authentication failed: wrong key, tampered packet or a packet from another session."""


class MalformedPacketError(TransportError):
    """Too short for its own header, or header fields that point past the end of the packet."""


class TransportDecryptor(Protocol):
    mode: str

    def decrypt(self, packet: bytes) -> bytes:
        """The RTP payload (Opus, possibly DAVE-wrapped), header-extension elements removed."""
        ...


def _layout(packet: bytes) -> tuple[int, int]:
    """(AAD length, extension element bytes) of an RTP packet, validated against its length."""
    n = len(packet)
    if n < 12:
        raise MalformedPacketError(f"{n}-byte datagram is shorter than an RTP header")
    first = packet[0]
    aad = 12 + ((first & 0x0F) << 2)
    ext = 0
    if first & 0x10:
        if n < aad + 4:
            raise MalformedPacketError("header extension preamble missing")
        ext = ((packet[aad + 2] << 8) | packet[aad + 3]) << 2
        aad += 4
    if n - aad - 4 < _TAG_BYTES:
        raise MalformedPacketError(f"{n}-byte packet has no room for ciphertext, tag and nonce")
    return aad, ext


def _strip(plain: bytes, first_byte: int, ext: int) -> bytes:
    end = len(plain)
    if first_byte & 0x20:  # RTP padding: the last byte counts the padding bytes (RFC 3550 §5.1)
        pad = plain[-1] if end else 0
        if pad == 0 or pad > end - ext:
            raise MalformedPacketError("bad RTP padding length")
        end -= pad
    if ext > end:
        raise MalformedPacketError("header extension longer than the payload")
    return plain[ext:end] if (ext or end != len(plain)) else plain


class XChaCha20RtpSize:
    """``aead_xchacha20_poly1305_rtpsize``: the mode discord.py 2.7.1 selects."""

    mode = XCHACHA20_RTPSIZE
    __slots__ = ("_decrypt", "_ffi", "_key", "_mlen", "_nonce", "_nonce_ptr", "_out")

    def __init__(self, secret_key: bytes | Sequence[int]) -> None:
        key = bytes(secret_key)
        if len(key) != 32:
            raise ValueError(f"secret key must be 32 bytes, got {len(key)}")
        self._key = key
        try:
            # PyNaCl's compiled cffi module: the same libsodium nacl.bindings wraps, minus the
            # per-call allocations. Private to PyNaCl, hence the fallback below.
            from nacl._sodium import ffi, lib  # noqa: PLC0415

            self._ffi = ffi
            self._decrypt = lib.crypto_aead_xchacha20poly1305_ietf_decrypt
            self._out = ffi.new("unsigned char[]", _MAX_DATAGRAM)
            self._mlen = ffi.new("unsigned long long *")
            self._nonce = bytearray(24)
            self._nonce_ptr = ffi.from_buffer(self._nonce)
        except (ImportError, AttributeError):  # pragma: no cover - depends on the PyNaCl build
            self._ffi = None

    def decrypt(self, packet: bytes) -> bytes:
        aad, ext = _layout(packet)
        n = len(packet)
        ffi = self._ffi
        if ffi is None:  # pragma: no cover - fallback path
            return self._decrypt_bindings(packet, aad, ext)
        self._nonce[:4] = packet[n - 4 :]
        rc = self._decrypt(
            self._out, self._mlen, ffi.NULL, ffi.from_buffer(packet) + aad, n - aad - 4,
            packet, aad, self._nonce_ptr, self._key,
        )  # fmt: skip
        if rc != 0:
            raise TransportAuthError("xchacha20-poly1305 authentication failed")
        mlen = self._mlen[0]
        first = packet[0]
        if not first & 0x20:
            if ext > mlen:
                raise MalformedPacketError("header extension longer than the payload")
            plain: bytes = ffi.buffer(self._out, mlen)[ext:]
            return plain
        return _strip(ffi.buffer(self._out, mlen)[:], first, ext)

    def _decrypt_bindings(self, packet: bytes, aad: int, ext: int) -> bytes:  # pragma: no cover
        import nacl.bindings  # noqa: PLC0415
        import nacl.exceptions  # noqa: PLC0415

        n = len(packet)
        try:
            plain = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                packet[aad : n - 4], packet[:aad], packet[n - 4 :] + bytes(20), self._key
            )
        except nacl.exceptions.CryptoError as exc:
            raise TransportAuthError("xchacha20-poly1305 authentication failed") from exc
        return _strip(plain, packet[0], ext)


class Aes256GcmRtpSize:
    """``aead_aes256_gcm_rtpsize``: Discord's preferred mode. discord.py 2.7.1 never selects it
    (its ``supported_modes`` lacks it) and PyNaCl's bundled libsodium has no AES-GCM, so this uses
    ``cryptography`` (OpenSSL), imported only when the mode is actually in use."""

    mode = AES256_GCM_RTPSIZE
    __slots__ = ("_aead", "_invalid_tag", "_nonce")

    def __init__(self, secret_key: bytes | Sequence[int]) -> None:
        key = bytes(secret_key)
        if len(key) != 32:
            raise ValueError(f"secret key must be 32 bytes, got {len(key)}")
        try:
            from cryptography.exceptions import InvalidTag  # noqa: PLC0415
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError(f"{AES256_GCM_RTPSIZE} needs the 'cryptography' package") from exc
        self._aead = AESGCM(key)
        self._invalid_tag = InvalidTag
        self._nonce = bytearray(12)

    def decrypt(self, packet: bytes) -> bytes:
        aad, ext = _layout(packet)
        n = len(packet)
        self._nonce[:4] = packet[n - 4 :]
        view = memoryview(packet)
        try:
            plain = self._aead.decrypt(bytes(self._nonce), view[aad : n - 4], view[:aad])
        except self._invalid_tag as exc:
            raise TransportAuthError("aes256-gcm authentication failed") from exc
        return _strip(plain, packet[0], ext)


def make_decryptor(mode: str, secret_key: bytes | Sequence[int]) -> TransportDecryptor:
    """The decryptor for a voice session's negotiated mode and key (``SESSION_DESCRIPTION``)."""
    if mode == XCHACHA20_RTPSIZE:
        return XChaCha20RtpSize(secret_key)
    if mode == AES256_GCM_RTPSIZE:
        return Aes256GcmRtpSize(secret_key)
    raise ValueError(f"unsupported voice encryption mode {mode!r}; supported: {', '.join(SUPPORTED_MODES)}")
