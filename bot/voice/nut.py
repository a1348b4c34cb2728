"""Opus packets out of FFmpeg's NUT stream, each as soon as FFmpeg writes it.

Why NUT and not Ogg: FFmpeg's Ogg muxer keeps the last two pages back (one until the next packet
closes it, one more so it can flag the end of stream), so every packet left FFmpeg ~40 ms after
it was encoded; Matroska held three. The NUT muxer writes each frame when it gets it (measured
with FFmpeg 9.0: zero packets held beyond the 20 ms frame being filled). NUT is FFmpeg's own
container (spec: ffmpeg.org/~michael/nut.txt); only what FFmpeg's muxer writes is read here:
startcode packets are skipped whole, frames are decoded with the main header's frame-code table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

FILE_ID = b"nut/multimedia container\x00"
MAIN_STARTCODE = 0x4E4D7A561F5F04AD
STARTCODE_PREFIX = 0x4E  # "N": every startcode begins with it, no frame code equals it

FLAG_CODED_PTS = 8
FLAG_STREAM_ID = 16
FLAG_SIZE_MSB = 32
FLAG_CHECKSUM = 64
FLAG_RESERVED = 128
FLAG_SM_DATA = 256
FLAG_HEADER_IDX = 1024
FLAG_MATCH_TIME = 2048
FLAG_CODED = 4096
FLAG_INVALID = 8192


class NutError(Exception):
    """The stream is not NUT as FFmpeg writes it, or ended inside a packet."""


@dataclass(slots=True, frozen=True)
class _FrameCode:
    flags: int
    size_mul: int
    size_lsb: int
    reserved: int
    header_idx: int


_INVALID = _FrameCode(FLAG_INVALID, 1, 0, 0, 0)


class _Bytes:
    """Exact reads over a blocking ``read(n)`` that may return fewer bytes (a pipe)."""

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self._buffer = bytearray()
        self._pos = 0

    def take(self, count: int) -> bytes:
        while len(self._buffer) - self._pos < count:
            more = self._read(max(4096, count))
            if not more:
                raise EOFError
            if self._pos:
                del self._buffer[: self._pos]
                self._pos = 0
            self._buffer += more
        data = bytes(self._buffer[self._pos : self._pos + count])
        self._pos += count
        return data

    def byte(self) -> int:
        return self.take(1)[0]

    # Push mode (``NutParser``): bytes are appended, and a unit that runs out of them is re-read.
    def append(self, data: bytes) -> None:
        if self._pos:
            del self._buffer[: self._pos]
            self._pos = 0
        self._buffer += data

    @property
    def pos(self) -> int:
        return self._pos

    def rewind(self, pos: int) -> None:
        self._pos = pos

    @property
    def left(self) -> int:
        return len(self._buffer) - self._pos

    def varint(self) -> int:
        value = 0
        while True:
            byte = self.byte()
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                return value

    def signed(self) -> int:
        value = self.varint() + 1
        return -(value >> 1) if value & 1 else value >> 1


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    while True:
        byte = data[pos]
        pos += 1
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, pos


def _signed(data: bytes, pos: int) -> tuple[int, int]:
    value, pos = _varint(data, pos)
    value += 1
    return (-(value >> 1) if value & 1 else value >> 1), pos


class NutReader:
    """Iterates the frames (packets) of a NUT stream read from ``read``; one stream expected."""

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._in = _Bytes(read)
        self._codes: list[_FrameCode] = []
        self._headers: list[bytes] = [b""]

    def iter_packets(self) -> Iterator[bytes]:
        """Yield each frame's payload; stop cleanly at the end of the stream."""
        try:
            if self._in.take(len(FILE_ID)) != FILE_ID:
                raise NutError("not a NUT stream")
        except EOFError:
            return
        while True:
            try:
                code = self._in.byte()
            except EOFError:
                return
            try:
                if code == STARTCODE_PREFIX:
                    self._startcode_packet(code)
                    continue
                packet = self._frame(code)
            except (EOFError, IndexError) as error:
                raise NutError("stream ended inside a packet") from error
            yield packet

    def _startcode_packet(self, first: int) -> None:
        startcode = int.from_bytes(bytes([first]) + self._in.take(7), "big")
        size = self._in.varint()
        if size > 4096:
            self._in.take(4)  # header checksum
        body = self._in.take(size)  # ends with the packet's CRC
        if startcode == MAIN_STARTCODE:
            self._main_header(body)

    def _main_header(self, body: bytes) -> None:
        version, pos = _varint(body, 0)
        if version > 3:
            _, pos = _varint(body, pos)  # minor version
        _, pos = _varint(body, pos)  # stream count
        _, pos = _varint(body, pos)  # max distance
        time_bases, pos = _varint(body, pos)
        for _ in range(time_bases * 2):
            _, pos = _varint(body, pos)
        codes: list[_FrameCode] = []
        mul, header_idx = 1, 0
        while len(codes) < 256:
            flags, pos = _varint(body, pos)
            fields, pos = _varint(body, pos)
            if fields > 0:
                _, pos = _signed(body, pos)  # pts delta
            if fields > 1:
                mul, pos = _varint(body, pos)
            if fields > 2:
                _, pos = _varint(body, pos)  # stream id
            size = reserved = 0
            if fields > 3:
                size, pos = _varint(body, pos)
            if fields > 4:
                reserved, pos = _varint(body, pos)
            count = mul - size
            if fields > 5:
                count, pos = _varint(body, pos)
            if fields > 6:
                _, pos = _signed(body, pos)  # match time delta
            if fields > 7:
                header_idx, pos = _varint(body, pos)
            for _ in range(8, fields):
                _, pos = _varint(body, pos)
            if count <= 0:
                raise NutError("bad frame code table")
            j = 0
            while j < count and len(codes) < 256:
                if len(codes) == STARTCODE_PREFIX:
                    codes.append(_INVALID)
                    continue
                codes.append(_FrameCode(flags, mul, size + j, reserved, header_idx))
                j += 1
        headers = [b""]
        if len(body) > pos + 4:
            count, pos = _varint(body, pos)
            for _ in range(count):
                length, pos = _varint(body, pos)
                headers.append(body[pos : pos + length])
                pos += length
        self._codes, self._headers = codes, headers

    def _frame(self, code: int) -> bytes:
        if not self._codes:
            raise NutError("frame before the main header")
        frame = self._codes[code]
        flags, size, header_idx, reserved = frame.flags, frame.size_lsb, frame.header_idx, frame.reserved
        if flags & FLAG_INVALID:
            raise NutError(f"invalid frame code {code}")
        read = self._in
        if flags & FLAG_CODED:
            flags ^= read.varint()
        if flags & FLAG_STREAM_ID:
            read.varint()
        if flags & FLAG_CODED_PTS:
            read.varint()
        if flags & FLAG_SIZE_MSB:
            size += frame.size_mul * read.varint()
        if flags & FLAG_MATCH_TIME:
            read.signed()
        if flags & FLAG_HEADER_IDX:
            header_idx = read.varint()
        if flags & FLAG_RESERVED:
            reserved = read.varint()
        for _ in range(reserved):
            read.varint()
        if size > 4096:
            header_idx = 0
        header = self._headers[header_idx]
        if flags & FLAG_CHECKSUM:
            read.take(4)
        if flags & FLAG_SM_DATA:
            raise NutError("side data in frames is not expected from FFmpeg's NUT version 3")
        return header + read.take(size - len(header))


def _no_more(_size: int) -> bytes:
    return b""


class NutParser:
    """``NutReader`` fed by whoever reads the pipe (a selector): ``feed`` returns the frames the
    bytes so far complete. Parsing a unit has no effect until the unit is complete, so one cut
    short is simply parsed again when more bytes come."""

    def __init__(self) -> None:
        self._reader = NutReader(_no_more)
        self._started = False

    @property
    def leftover(self) -> int:
        """Bytes of an unfinished unit (at the end of the stream: it was cut short)."""
        return self._reader._in.left

    def feed(self, data: bytes) -> list[bytes]:
        source, reader = self._reader._in, self._reader
        source.append(data)
        packets: list[bytes] = []
        while True:
            mark = source.pos
            try:
                if not self._started:
                    if source.take(len(FILE_ID)) != FILE_ID:
                        raise NutError("not a NUT stream")
                    self._started = True
                    continue
                code = source.byte()
                if code == STARTCODE_PREFIX:
                    reader._startcode_packet(code)
                    continue
                packets.append(reader._frame(code))
            except EOFError:
                source.rewind(mark)
                return packets
            except IndexError as error:  # a header field past the end of its packet
                raise NutError("malformed packet") from error
