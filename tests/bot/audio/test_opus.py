"""libopus through ctypes: round trip, concealment, corrupt input, native lifetime."""

from __future__ import annotations

import numpy as np
import pytest

from bot.audio.frames import DISCORD_FRAME_BYTES, FRAME_SAMPLES
from bot.audio.opus import OpusDecodeError, OpusDecoder, OpusEncoder, OpusError, load_libopus
from tests.fakes.synth import frames, speech_like, stereo, to_int16

RATE = 48_000


def _best_correlation(reference: np.ndarray, decoded: np.ndarray, max_lag: int = 2000) -> tuple[float, int]:
    """Highest Pearson correlation of decoded[lag:] with reference over lags 0..max_lag (the codec
    delay is a few ms: Opus look-ahead plus the decoder's resampler)."""
    best, best_lag = -1.0, 0
    n = len(reference) - max_lag
    for lag in range(max_lag):
        c = float(np.corrcoef(reference[:n], decoded[lag : lag + n])[0, 1])
        if c > best:
            best, best_lag = c, lag
    return best, best_lag


@pytest.fixture
def speech() -> np.ndarray:
    return to_int16(speech_like(2.0, RATE, seed=7))


def test_load_libopus_finds_a_library_with_the_decoder() -> None:
    lib = load_libopus()
    assert hasattr(lib, "opus_decode")
    assert lib.opus_strerror(-4) == b"corrupted stream"


def test_load_libopus_explicit_missing_path_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(OpusError, match="libopus could not be loaded"):
        load_libopus(str(tmp_path / "libopus-missing.so"))


def test_round_trip_of_speech_correlates_with_the_source(speech: np.ndarray) -> None:
    """Tolerance: Pearson r > 0.9 after aligning the codec delay (64 kbit/s, 20 ms frames)."""
    with OpusEncoder(application="voip", bitrate=64_000) as encoder, OpusDecoder() as decoder:
        pcm = b"".join(decoder.decode(encoder.encode(f)) for f in frames(stereo(speech), FRAME_SAMPLES * 2))
    decoded = np.frombuffer(pcm, dtype=np.int16).reshape(-1, 2)
    assert decoded.shape[0] == len(speech) // FRAME_SAMPLES * FRAME_SAMPLES
    left, right = decoded[:, 0].astype(np.float64), decoded[:, 1].astype(np.float64)
    correlation, lag = _best_correlation(speech[: len(left)].astype(np.float64), left)
    assert correlation > 0.9, (correlation, lag)
    assert 0 < lag < 1000  # a real, few-ms codec delay was found, not a fluke at the edge
    assert np.corrcoef(left, right)[0, 1] > 0.99  # identical channels stay identical


@pytest.mark.parametrize("ms", [2.5, 10, 20, 40, 60])
def test_decode_handles_every_frame_duration(ms: float, speech: np.ndarray) -> None:
    samples = int(RATE * ms / 1000)
    with OpusEncoder() as encoder, OpusDecoder() as decoder:
        packet = encoder.encode(stereo(speech[:samples]).tobytes())
        assert decoder.packet_samples(packet) == samples
        assert len(decoder.decode(packet)) == samples * 4


def test_decode_of_a_120_ms_packet_fits_the_preallocated_buffer() -> None:
    # Code-3 packet (RFC 6716 §3.2.5): TOC config 3 (SILK NB 60 ms), 2 CBR frames of 0 bytes.
    packet = bytes([(3 << 3) | 3, 2])
    with OpusDecoder() as decoder:
        assert len(decoder.decode(packet)) == 5760 * 4


@pytest.mark.parametrize(
    "packet",
    [b"\xff", b"\x03", bytes([(3 << 3) | 3, 63])],  # no count byte; code 3 without count; 63 × 60 ms > 120 ms
    ids=["truncated-code3", "code3-no-count", "too-long"],
)
def test_corrupt_packet_raises_and_decoder_survives(packet: bytes, speech: np.ndarray) -> None:
    with OpusEncoder() as encoder, OpusDecoder() as decoder:
        with pytest.raises(OpusDecodeError, match="corrupted stream|invalid"):
            decoder.decode(packet)
        good = encoder.encode(stereo(speech[:FRAME_SAMPLES]).tobytes())
        assert len(decoder.decode(good)) == DISCORD_FRAME_BYTES


def test_empty_packet_is_an_error_not_concealment() -> None:
    with OpusDecoder() as decoder, pytest.raises(OpusDecodeError, match="empty"):
        decoder.decode(b"")


def test_conceal_produces_exactly_one_frame_and_fec_recovers_the_lost_one(speech: np.ndarray) -> None:
    """PLC and FEC each yield 3840 bytes. With in-band FEC on, the frame rebuilt from the next
    packet's FEC copy matches what decoding the lost packet would have given (r > 0.9; measured
    0.999, while plain concealment of the same frame scores ~0.47, so this proves FEC was used)."""
    source = frames(stereo(speech), FRAME_SAMPLES * 2)
    with OpusEncoder(application="voip", fec=True, expected_loss_percent=20) as encoder:
        packets = [encoder.encode(f) for f in source]
    lost = 40
    with OpusDecoder() as decoder, OpusDecoder() as reference:
        out = []
        for i, packet in enumerate(packets[: lost + 2]):
            ref = reference.decode(packet)
            if i == lost:
                out.append(decoder.conceal(packets[lost + 1]))
            else:
                out.append(decoder.decode(packet))
            if i == lost:
                clean = ref
        assert all(len(chunk) == DISCORD_FRAME_BYTES for chunk in out)
        recovered = np.frombuffer(out[lost], dtype=np.int16)[0::2].astype(np.float64)
        expected = np.frombuffer(clean, dtype=np.int16)[0::2].astype(np.float64)
        assert np.corrcoef(recovered, expected)[0, 1] > 0.9
        assert len(decoder.conceal()) == DISCORD_FRAME_BYTES
        assert len(decoder.conceal(None)) == DISCORD_FRAME_BYTES


def test_close_is_idempotent_and_use_after_close_is_an_error() -> None:
    decoder = OpusDecoder()
    decoder.close()
    decoder.close()
    with pytest.raises(OpusError, match="closed"):
        decoder.decode(b"\xf8\xff\xfe")
    encoder = OpusEncoder()
    encoder.close()
    with pytest.raises(OpusError, match="closed"):
        encoder.encode(bytes(DISCORD_FRAME_BYTES))


def test_discord_silence_frame_decodes_to_silence() -> None:
    with OpusDecoder() as decoder:
        pcm = decoder.decode(b"\xf8\xff\xfe")  # what Discord clients send before going quiet
    assert len(pcm) == DISCORD_FRAME_BYTES
    assert not any(pcm)


def test_encoder_rejects_partial_samples_and_bad_application() -> None:
    with OpusEncoder() as encoder, pytest.raises(ValueError, match="whole number"):
        encoder.encode(b"\x00\x01\x02")
    with pytest.raises(ValueError, match="application"):
        OpusEncoder(application="music")  # type: ignore[arg-type]


def test_a_16k_mono_decoder_gives_the_48k_path_s_speech_at_a_third_of_the_samples(speech: np.ndarray) -> None:
    """``OpusDecoder(sample_rate=16_000, channels=1)``: 640 bytes per 20 ms frame (and per
    concealed frame), the same speech as decoding at 48 kHz and taking every third sample
    (r > 0.9 after the codec delay: both are band-limited by the encoder at 64 kbit/s)."""
    with OpusEncoder(application="voip", bitrate=64_000) as encoder:
        packets = [encoder.encode(f) for f in frames(stereo(speech), FRAME_SAMPLES * 2)]
    with OpusDecoder() as wide, OpusDecoder(sample_rate=16_000, channels=1) as narrow:
        pcm48 = b"".join(wide.decode(p) for p in packets)
        chunks = [narrow.decode(p) for p in packets]
        assert {len(c) for c in chunks} == {640}
        assert len(narrow.conceal()) == 640
    mono48 = np.frombuffer(pcm48, dtype=np.int16).reshape(-1, 2)[:, 0].astype(np.float64)
    mono16 = np.frombuffer(b"".join(chunks), dtype=np.int16).astype(np.float64)
    correlation, _ = _best_correlation(mono48[::3], mono16, max_lag=200)
    assert correlation > 0.9, correlation
