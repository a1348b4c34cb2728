"""The Ogg page reader and the Opus TOC (RFC 6716 section 3.1) on real libopus output."""

from __future__ import annotations

import pytest

from bot.audio.ogg_opus import OggError, OggOpusReader, OpusFrames, opus_frames
from tests.fakes.mistral.audio import encode_speech, speech_samples

TEXT = "The quick brown fox jumps over the lazy dog."


def toc(config: int, code: int, *, stereo: bool = False) -> int:
    return config << 3 | int(stereo) << 2 | code


@pytest.mark.parametrize(("first", "extra", "expected"), [
    (toc(1, 0), b"", OpusFrames(0.020, 1)),  # SILK NB 20 ms
    (toc(2, 0), b"", OpusFrames(0.040, 1)),  # SILK NB 40 ms
    (toc(31, 0, stereo=True), b"", OpusFrames(0.020, 1)),  # CELT FB 20 ms: the stereo bit is not a count
    (toc(31, 1), b"", OpusFrames(0.020, 2)),  # code 1: two equal frames
    (toc(31, 2), b"", OpusFrames(0.020, 2)),  # code 2: two frames of different sizes
    (toc(3, 3), bytes([3]), OpusFrames(0.060, 3)),  # SILK 60 ms, code 3 with its count byte
    (toc(31, 3), bytes([0x80 | 3]), OpusFrames(0.020, 3)),  # code 3, VBR flag set, three 20 ms frames
    (toc(13, 0), b"", OpusFrames(0.020, 1)),  # hybrid SWB 20 ms
    (toc(12, 0), b"", OpusFrames(0.010, 1)),  # hybrid SWB 10 ms
    (toc(16, 0), b"", OpusFrames(0.0025, 1)),  # CELT NB 2.5 ms
])
def test_the_toc_gives_frame_size_and_count(first: int, extra: bytes, expected: OpusFrames) -> None:
    frames = opus_frames(bytes([first]) + extra + b"\x00" * 10)
    assert frames == expected
    assert frames.copyable == (expected == OpusFrames(0.020, 1))


def test_a_code_3_packet_without_its_count_byte_is_an_error() -> None:
    with pytest.raises(OggError):
        opus_frames(bytes([31 << 3 | 3]))


@pytest.mark.parametrize(("frame_ms", "copyable", "packet_s"), [(20, True, 0.020), (60, False, 0.060)])
def test_pages_fed_byte_by_byte_come_out_whole_with_their_audio(frame_ms: int, copyable: bool,
                                                                packet_s: float) -> None:
    samples = speech_samples(TEXT)
    ogg = encode_speech(samples, "opus", opus_frame_ms=frame_ms)
    reader = OggOpusReader()
    pieces = [reader.feed(ogg[i:i + 1]) for i in range(len(ogg))]
    assert b"".join(p.data for p in pieces) == ogg
    assert all(p.data.startswith(b"OggS") for p in pieces if p.data)
    assert reader.pending == 0
    firsts = [p.first_packet for p in pieces if p.first_packet is not None]
    assert firsts[0].copyable is copyable
    assert firsts[0].seconds == pytest.approx(packet_s)
    seconds = sum(p.seconds for p in pieces)
    # Every packet counted once: the speech, plus the codec's pre-skip and the last frame's padding.
    assert len(samples) / 24_000 <= seconds <= len(samples) / 24_000 + packet_s + 0.0065


def test_chained_streams_count_no_header_packet_as_audio() -> None:
    one = encode_speech(speech_samples("Hello."), "opus")
    reader = OggOpusReader()
    single = reader.feed(one).seconds
    chained = OggOpusReader().feed(one + one + one[:20])  # and the start of a third page
    assert chained.seconds == pytest.approx(2 * single)
    assert chained.data == one + one


def test_bytes_that_are_not_ogg_are_refused() -> None:
    with pytest.raises(OggError):
        OggOpusReader().feed(b"RIFF" + bytes(100))
