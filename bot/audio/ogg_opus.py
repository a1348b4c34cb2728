"""Ogg Opus as Voxtral TTS streams it (``response_format="opus"``): whole pages out of arbitrary
byte pieces, the Opus packets in them, and how long each packet plays.

The player copies the packets to Discord unchanged only when each is a single 20 ms frame (the
packet sender sends one packet per 20 ms slot, and discord.py advances the RTP timestamp by 960
per packet), so the frame layout of each packet is read from its TOC byte (RFC 6716 section 3.1).
Pages are handed on whole, never split: FFmpeg's Ogg demuxer then never waits inside a page.
No CRC check: the bytes came over TLS, and FFmpeg checks them again.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

PAGE_HEADER = struct.Struct("<4sBBqIIIB")  # capture, version, flags, granule, serial, sequence, CRC, segments
CAPTURE = b"OggS"
BEGIN_OF_STREAM = 0x02
COPY_FRAME_SECONDS = 0.020  # the only frame the player sends as it is

# RFC 6716 section 3.1, Table 2: frame size by configuration number (TOC bits 7-3).
_SILK_MS = (10.0, 20.0, 40.0, 60.0)  # configs 0-11, by config % 4
_HYBRID_MS = (10.0, 20.0)  # configs 12-15, by config % 2
_CELT_MS = (2.5, 5.0, 10.0, 20.0)  # configs 16-31, by config % 4


class OggError(ValueError):
    """The bytes are not an Ogg stream, or not a well-formed Opus packet."""


@dataclass(frozen=True, slots=True)
class OpusFrames:
    """How one Opus packet is laid out: ``count`` frames of ``frame_seconds`` each."""

    frame_seconds: float
    count: int

    @property
    def seconds(self) -> float:
        return self.frame_seconds * self.count

    @property
    def copyable(self) -> bool:
        """One 20 ms frame: what one 20 ms RTP slot carries."""
        return self.count == 1 and abs(self.frame_seconds - COPY_FRAME_SECONDS) < 1e-9


def opus_frames(packet: bytes) -> OpusFrames:
    """The frame size (TOC configuration) and frame count (TOC code 0-3) of one Opus packet."""
    if not packet:
        raise OggError("empty Opus packet")
    toc = packet[0]
    config, code = toc >> 3, toc & 0x03
    if config < 12:
        milliseconds = _SILK_MS[config % 4]
    elif config < 16:
        milliseconds = _HYBRID_MS[config % 2]
    else:
        milliseconds = _CELT_MS[config % 4]
    if code == 0:
        count = 1
    elif code in (1, 2):
        count = 2
    else:
        if len(packet) < 2:
            raise OggError("Opus code 3 packet without its frame count byte")
        count = packet[1] & 0x3F
    return OpusFrames(milliseconds / 1000, count)


@dataclass(frozen=True, slots=True)
class OpusPages:
    """Whole Ogg pages of TTS speech, as they reached us, with what their packets play."""

    data: bytes
    seconds: float  # audio in the packets completed in these pages
    first_packet: OpusFrames | None  # the first audio packet completed in them, if any

    @property
    def duration(self) -> float:
        return self.seconds


class OggOpusReader:
    """Whole pages and completed audio packets out of an Ogg Opus byte stream fed in pieces.

    Chained streams (one per sentence) are fine: each begins with its ``OpusHead`` and
    ``OpusTags`` packets, which are not audio."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._packet = bytearray()  # a packet continued on the next page

    @property
    def pending(self) -> int:
        """Bytes of an incomplete page kept for the next piece."""
        return len(self._buffer)

    def feed(self, data: bytes) -> OpusPages:
        """Pages completed by ``data`` (``data`` empty when none)."""
        self._buffer += data
        buffer = self._buffer
        offset, seconds, first = 0, 0.0, None
        while len(buffer) - offset >= PAGE_HEADER.size:
            capture, version, _flags, _granule, _serial, _seq, _crc, segments = PAGE_HEADER.unpack_from(buffer, offset)
            if capture != CAPTURE or version != 0:
                raise OggError(f"not an Ogg page at byte {offset} of the piece ({bytes(capture)!r})")
            body = offset + PAGE_HEADER.size + segments
            if len(buffer) < body:
                break
            lacing = buffer[offset + PAGE_HEADER.size:body]
            end = body + sum(lacing)
            if len(buffer) < end:
                break
            position = body
            for size in lacing:
                self._packet += buffer[position:position + size]
                position += size
                if size < 255:  # a packet ends with a lacing value below 255
                    packet, self._packet = bytes(self._packet), bytearray()
                    if packet and not packet.startswith((b"OpusHead", b"OpusTags")):
                        frames = opus_frames(packet)
                        seconds += frames.seconds
                        if first is None:
                            first = frames
            offset = end
        pages = bytes(buffer[:offset])
        del buffer[:offset]
        return OpusPages(pages, seconds, first)
