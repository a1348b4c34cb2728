"""Builders for the receive-path tests: Discord-shaped RTP packets, a real two-member DAVE group,
Opus packets from a synthetic voice, and small doubles for the connection and the sink.

Packets are sealed here with PyNaCl / cryptography following Discord's documented wire format,
independently of ``bot.voice.transport``.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

import davey
import nacl.bindings
import numpy as np
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bot.audio.opus import OpusEncoder

XCHACHA = "aead_xchacha20_poly1305_rtpsize"
AES = "aead_aes256_gcm_rtpsize"
BOT_ID, ALICE_ID, BOB_ID, CHANNEL_ID = 111, 222, 333, 999
BOT_SSRC, ALICE_SSRC, BOB_SSRC = 1111, 2222, 3333
SILENCE = b"\xf8\xff\xfe"


def seal(
    key: bytes, seq: int, ts: int, ssrc: int, payload: bytes, *, counter: int = 0, mode: str = XCHACHA,
    extension: bytes | None = b"\x10\xff\x00\x00", csrcs: int = 0, padding: int = 0, payload_type: int = 0x78,
) -> bytes:  # fmt: skip
    """One Discord voice datagram. ``extension``: the one-byte-header elements (a multiple of 4
    bytes, encrypted with the payload); None for no extension."""
    first = 0x80 | csrcs | (0x10 if extension is not None else 0) | (0x20 if padding else 0)
    aad = struct.pack(">BBHII", first, payload_type, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
    aad += b"".join(struct.pack(">I", 7000 + i) for i in range(csrcs))
    plain = payload
    if extension is not None:
        assert len(extension) % 4 == 0
        aad += struct.pack(">HH", 0xBEDE, len(extension) // 4)
        plain = extension + payload
    if padding:
        plain += bytes(padding - 1) + bytes([padding])
    nonce4 = struct.pack(">I", counter)
    if mode == XCHACHA:
        sealed = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(plain, aad, nonce4 + bytes(20), key)
    else:
        sealed = AESGCM(key).encrypt(nonce4 + bytes(8), plain, aad)
    return aad + sealed + nonce4


def speech_pcm(seconds: float, *, seed: int = 0) -> bytes:
    """48 kHz stereo int16: a voiced, pitch-gliding harmonic signal with syllable-like bursts."""
    rng = np.random.default_rng(seed)
    n = int(48_000 * seconds)
    t = np.arange(n) / 48_000
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t + seed)
    phase = 2 * np.pi * np.cumsum(f0) / 48_000
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3.5 * t) ** 2
    mono = 0.25 * voice * envelope + 0.01 * rng.standard_normal(n)
    pcm = (np.clip(mono, -1, 1) * 20_000).astype(np.int16)
    return np.repeat(pcm, 2).tobytes()


def opus_packets(frames: int, *, seed: int = 0, fec: bool = False) -> list[bytes]:
    pcm = speech_pcm(frames * 0.02, seed=seed)
    encoder = OpusEncoder(bitrate=64_000, fec=fec, expected_loss_percent=10 if fec else 0)
    try:
        return [encoder.encode(pcm[i * 3840 : (i + 1) * 3840]) for i in range(frames)]
    finally:
        encoder.close()


# ---------------------------------------------------------------- a real DAVE group, no server
def _varint(n: int) -> bytes:
    if n < 64:
        return bytes([n])
    if n < 16384:
        return struct.pack(">H", 0x4000 | n)
    return struct.pack(">I", 0x80000000 | n)


def _vbytes(data: bytes) -> bytes:
    return _varint(len(data)) + data


class ExternalSender:
    """Plays the voice server's MLS external sender: signs Add proposals for members."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        public = self._key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        # ExternalSender { signature_key<V>, credential { type=basic(1), identity<V> } }
        self.package = _vbytes(public) + struct.pack(">H", 1) + _vbytes(bytes(8))

    def add_proposals(self, epoch: int, key_package: bytes) -> bytes:
        """The op 27 ``proposals`` vector holding one signed external Add proposal."""
        content = (
            _vbytes(struct.pack(">Q", CHANNEL_ID))
            + struct.pack(">QBI", epoch, 2, 0)
            + _vbytes(b"")
            + b"\x02"
            + struct.pack(">H", 1)
            + key_package
        )
        tbs = struct.pack(">HH", 1, 1) + content  # mls10, wire format public_message
        signature = self._key.sign(
            _vbytes(b"MLS 1.0 FramedContentTBS") + _vbytes(tbs), ec.ECDSA(hashes.SHA256())
        )
        return _vbytes(tbs + _vbytes(signature))


@dataclass
class DaveGroup:
    """The bot's session and a member's session in one established MLS group (epoch 1)."""

    bot: davey.DaveSession
    member: davey.DaveSession


def dave_group(member_id: int = ALICE_ID) -> DaveGroup:
    sender = ExternalSender()
    bot = davey.DaveSession(1, BOT_ID, CHANNEL_ID)
    bot.set_external_sender(sender.package)
    member = davey.DaveSession(1, member_id, CHANNEL_ID)
    member.set_external_sender(sender.package)
    commit_welcome = bot.process_proposals(
        davey.ProposalsOperationType.append, sender.add_proposals(0, member.get_serialized_key_package())
    )
    assert commit_welcome is not None and commit_welcome.welcome is not None
    member.process_welcome(commit_welcome.welcome)
    bot.process_commit(commit_welcome.commit)
    assert bot.ready and member.ready
    return DaveGroup(bot, member)


# ---------------------------------------------------------------- doubles
@dataclass
class FakeConnection:
    """The attributes of discord.py's VoiceConnectionState that the receiver reads."""

    secret_key: list[int] = field(default_factory=lambda: list(os.urandom(32)))
    mode: str = XCHACHA
    ssrc: int = BOT_SSRC
    dave_session: object | None = None
    dave_protocol_version: int = 0
    listeners: list = field(default_factory=list)

    @property
    def key(self) -> bytes:
        return bytes(self.secret_key)

    def add_socket_listener(self, callback) -> None:
        self.listeners.append(callback)

    def remove_socket_listener(self, callback) -> None:
        if callback in self.listeners:
            self.listeners.remove(callback)


@dataclass
class RecordingSink:
    frames: list[tuple[int, bytes, int]] = field(default_factory=list)
    events: list[tuple[str, int]] = field(default_factory=list)

    def on_speaker_frame(self, user_id: int, pcm16k: bytes, rtp_timestamp: int) -> None:
        self.frames.append((user_id, pcm16k, rtp_timestamp))
        if not self.events or self.events[-1] != ("frame", user_id):
            self.events.append(("frame", user_id))

    def on_speaker_gone(self, user_id: int) -> None:
        self.events.append(("gone", user_id))

    def pcm(self, user_id: int) -> bytes:
        return b"".join(p for u, p, _ in self.frames if u == user_id)
