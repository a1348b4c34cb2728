"""The fake voice server's half of DAVE: the MLS external sender and the wire helpers around it.

In DAVE the voice gateway is the MLS *external sender*: it signs Add/Remove proposals that the
group members commit (https://daveprotocol.com/#external-sender). The fake holds a real ECDSA
P-256 key for that role, so the bot's ``davey.DaveSession`` verifies every proposal exactly as it
would against Discord. Only the few TLS structures the fake itself must emit or split are written
by hand here (RFC 9420 section 6 framing); everything else is done by real ``davey`` sessions.
"""

from __future__ import annotations

import struct

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

# RFC 9420 constants used below.
_MLS_10 = 1
_WIRE_PUBLIC_MESSAGE = 1
_SENDER_EXTERNAL = 2
_CONTENT_PROPOSAL = 2
_PROPOSAL_ADD = 1
_PROPOSAL_REMOVE = 3
_CREDENTIAL_BASIC = 1
_LEAF_SOURCE_KEY_PACKAGE = 1
_LEAF_SOURCE_COMMIT = 3


def encode_varint(n: int) -> bytes:
    """MLS variable-length integer (RFC 9420 section 2.1.2, the QUIC encoding without 8-byte form)."""
    if n < 1 << 6:
        return bytes([n])
    if n < 1 << 14:
        return struct.pack(">H", 0x4000 | n)
    if n < 1 << 30:
        return struct.pack(">I", 0x80000000 | n)
    raise ValueError(f"{n} does not fit an MLS varint")


def vbytes(data: bytes) -> bytes:
    """An opaque ``<V>`` vector: varint length then bytes."""
    return encode_varint(len(data)) + data


def read_varint(buf: bytes, i: int) -> tuple[int, int]:
    prefix = buf[i] >> 6
    if prefix == 0:
        return buf[i], i + 1
    if prefix == 1:
        return struct.unpack_from(">H", buf, i)[0] & 0x3FFF, i + 2
    if prefix == 2:
        return struct.unpack_from(">I", buf, i)[0] & 0x3FFFFFFF, i + 4
    raise ValueError("invalid MLS varint prefix")


def skip_vbytes(buf: bytes, i: int) -> int:
    n, i = read_varint(buf, i)
    if i + n > len(buf):
        raise ValueError("MLS vector runs past the end of the message")
    return i + n


class ExternalSender:
    """The voice gateway's MLS identity: one per channel group, like Discord's."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        public = self._key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        # ExternalSender { signature_key<V>, Credential { type=basic, identity<V> } }: the payload of
        # opcode 25. Discord's identity is opaque to clients; eight zero bytes mirror a zero user id.
        self.package: bytes = vbytes(public) + struct.pack(">H", _CREDENTIAL_BASIC) + vbytes(bytes(8))

    def add_proposal(self, group_id: int, epoch: int, key_package: bytes) -> bytes:
        """A signed ``MLSMessage(PublicMessage(Add))`` for a member's serialized KeyPackage."""
        return self._sign_proposal(group_id, epoch, struct.pack(">H", _PROPOSAL_ADD) + key_package)

    def remove_proposal(self, group_id: int, epoch: int, leaf_index: int) -> bytes:
        """A signed ``MLSMessage(PublicMessage(Remove))`` for the member at ``leaf_index``."""
        return self._sign_proposal(group_id, epoch, struct.pack(">HI", _PROPOSAL_REMOVE, leaf_index))

    def _sign_proposal(self, group_id: int, epoch: int, proposal: bytes) -> bytes:
        # FramedContent with an external sender (sender_index 0 = first entry of the
        # external_senders extension) and empty authenticated_data. External senders carry no
        # membership tag, so the whole message is FramedContentTBS followed by the signature.
        framed = (
            vbytes(struct.pack(">Q", group_id))
            + struct.pack(">QBI", epoch, _SENDER_EXTERNAL, 0)
            + vbytes(b"")
            + bytes([_CONTENT_PROPOSAL])
            + proposal
        )
        tbs = struct.pack(">HH", _MLS_10, _WIRE_PUBLIC_MESSAGE) + framed
        # SignWithLabel (RFC 9420 section 5.1.2): the signed content is the labelled SignContent.
        sign_content = vbytes(b"MLS 1.0 FramedContentTBS") + vbytes(tbs)
        signature = self._key.sign(sign_content, ec.ECDSA(hashes.SHA256()))
        return tbs + vbytes(signature)


def proposals_payload(proposals: list[bytes]) -> bytes:
    """Opcode 27 body for an *append*: operation type 0 then one vector of MLSMessages."""
    return b"\x00" + vbytes(b"".join(proposals))


def transition_payload(transition_id: int, body: bytes) -> bytes:
    """Opcodes 29 and 30 prefix their MLS message with a big-endian u16 transition id."""
    return struct.pack(">H", transition_id) + body


def _skip_leaf_node(buf: bytes, i: int) -> int:
    i = skip_vbytes(buf, i)  # encryption_key
    i = skip_vbytes(buf, i)  # signature_key
    credential_type = struct.unpack_from(">H", buf, i)[0]
    i += 2
    if credential_type != _CREDENTIAL_BASIC:
        raise ValueError(f"unsupported credential type {credential_type}")
    i = skip_vbytes(buf, i)  # identity
    for _ in range(5):  # capabilities: versions, ciphersuites, extensions, proposals, credentials
        i = skip_vbytes(buf, i)
    source = buf[i]
    i += 1
    if source == _LEAF_SOURCE_KEY_PACKAGE:
        i += 16  # lifetime: not_before, not_after
    elif source == _LEAF_SOURCE_COMMIT:
        i = skip_vbytes(buf, i)  # parent_hash
    i = skip_vbytes(buf, i)  # extensions
    return skip_vbytes(buf, i)  # signature


def split_commit_welcome(payload: bytes) -> tuple[bytes, bytes | None]:
    """Split opcode 28 (``commit || welcome?``) at the end of the commit's MLSMessage.

    Discord concatenates the two without a length, so the only way to split is to walk the
    commit: header(4) group_id<V> epoch(8) sender(1+4) aad<V> content_type(1) proposals<V>
    optional UpdatePath, signature<V> confirmation_tag<V> membership_tag<V>. Commits with a
    Remove carry an UpdatePath (RFC 9420 section 12.4), so that is parsed too.
    """
    i = skip_vbytes(payload, 4)
    i += 8 + 5
    i = skip_vbytes(payload, i)
    i += 1
    i = skip_vbytes(payload, i)
    has_path = payload[i]
    i += 1
    if has_path:
        i = _skip_leaf_node(payload, i)
        i = skip_vbytes(payload, i)  # nodes<V> of UpdatePathNode
    for _ in range(3):
        i = skip_vbytes(payload, i)
    return payload[:i], (payload[i:] or None)

