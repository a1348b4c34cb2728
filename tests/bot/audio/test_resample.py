"""Resampler quality proof: 48 kHz stereo int16 → 16 kHz mono int16 through DownmixResampler.

Measurements use long steady signals, skip the filter's start-up transient, and compare spectra
with a Hann window. Tolerances are stated per test.
"""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from bot.audio.frames import FRAME_SAMPLES
from bot.audio.resample import DownmixResampler
from tests.fakes.synth import frames, to_int16

IN_RATE, OUT_RATE = 48_000, 16_000
SECONDS = 2.0


def _tone(freq: float, amplitude: float = 0.5, seconds: float = SECONDS) -> np.ndarray:
    t = np.arange(int(seconds * IN_RATE)) / IN_RATE
    return amplitude * np.sin(2 * np.pi * freq * t)


def _run(stereo_int16: np.ndarray, *, frame_samples: int = FRAME_SAMPLES) -> np.ndarray:
    """Feed interleaved stereo int16 in frames; returns the whole 16 kHz output incl. flush."""
    resampler = DownmixResampler()
    out = b"".join(resampler.process(f) for f in frames(stereo_int16, frame_samples * 2))
    out += resampler.flush()
    return np.frombuffer(out, dtype=np.int16)


def _both(mono: np.ndarray) -> np.ndarray:
    return np.repeat(to_int16(mono), 2)


def _steady(out: np.ndarray) -> np.ndarray:
    """Middle part of the output, clear of start-up and flush transients."""
    return out[OUT_RATE // 4 : -OUT_RATE // 4].astype(np.float64)


def _rms_amplitude(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2)) * np.sqrt(2))


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0, 6000.0])
def test_passband_tones_keep_their_amplitude(freq: float) -> None:
    """Tolerance: output amplitude within ±0.1 dB of the input's (0.5 FS on both channels)."""
    out = _steady(_run(_both(_tone(freq))))
    gain_db = 20 * np.log10(_rms_amplitude(out) / (0.5 * 32767))
    assert abs(gain_db) < 0.1, gain_db


def test_output_length_is_one_third_of_the_input() -> None:
    """Streaming plus flush yields exactly len/3 samples (±1)."""
    out = _run(_both(_tone(1000.0)))
    assert abs(len(out) - int(SECONDS * IN_RATE) // 3) <= 1


@pytest.mark.parametrize("freq", [10_000.0, 12_000.0, 15_000.0, 20_000.0])
def test_out_of_band_tones_do_not_alias_into_0_to_8_khz(freq: float) -> None:
    """A full-scale-ish tone above the new 8 kHz Nyquist must be filtered, not folded (10 kHz
    would fold to 6 kHz). Tolerance: everything left in the output is below -60 dB relative to
    the input tone (soxr HQ's stopband is far deeper; the int16 dither floor is ~-96 dB)."""
    out = _steady(_run(_both(_tone(freq))))
    residual_db = 20 * np.log10((_rms_amplitude(out) + 1e-9) / (0.5 * 32767))
    assert residual_db < -60, residual_db


def test_white_noise_spectrum_is_flat_in_the_passband() -> None:
    """Tolerance: averaged power spectrum (Welch, 512-point) between 100 Hz and 6.5 kHz stays
    within ±1 dB of its median, and total passband power matches the input's within 0.3 dB."""
    rng = np.random.default_rng(11)
    noise = rng.standard_normal(int(8 * IN_RATE)) * 0.1
    out = _steady(_run(_both(noise)))
    psd = _welch(out, 512)
    freqs = np.fft.rfftfreq(512, 1 / OUT_RATE)
    band = (freqs >= 100) & (freqs <= 6500)
    deviation = 10 * np.log10(psd[band] / np.median(psd[band]))
    assert np.max(np.abs(deviation)) < 1.0, (deviation.min(), deviation.max())
    # White noise of variance s² spread over 24 kHz: 8 kHz passband keeps ~1/3 of the power
    # (slightly less: the filter's transition band above ~7.3 kHz).
    expected = (0.1 * 32767) ** 2 / 3
    ratio_db = 10 * np.log10(np.mean(out**2) / expected)
    assert -0.6 < ratio_db < 0.1, ratio_db


def _welch(x: np.ndarray, n: int) -> np.ndarray:
    window = np.hanning(n)
    segments = [x[i : i + n] * window for i in range(0, len(x) - n, n // 2)]
    return np.mean([np.abs(np.fft.rfft(s)) ** 2 for s in segments], axis=0)


@pytest.mark.parametrize("frame_samples", [FRAME_SAMPLES, 480, 1600])
def test_streaming_in_frames_equals_one_shot(frame_samples: int) -> None:
    """No clicks at frame boundaries: the frame-by-frame output equals soxr's one-shot resampling
    of the same downmixed signal sample by sample, within 2 LSB (soxr's int16 output carries ±1
    LSB TPDF dither, drawn differently when the work is split)."""
    rng = np.random.default_rng(5)
    signal = _tone(440.0, 0.3) + 0.05 * rng.standard_normal(int(SECONDS * IN_RATE))
    stereo = _both(signal)
    streamed = _run(stereo, frame_samples=frame_samples).astype(np.int32)
    mono = (stereo[0::2].astype(np.int32) + stereo[1::2]) >> 1
    one_shot = soxr.resample(mono.astype(np.int16), IN_RATE, OUT_RATE, quality="HQ").astype(np.int32)
    assert len(streamed) == len(one_shot)
    assert np.max(np.abs(streamed - one_shot)) <= 2


def test_odd_sized_chunks_are_accepted_and_buffers_grow() -> None:
    resampler = DownmixResampler()
    chunk = np.zeros(2 * 5000, dtype=np.int16).tobytes()  # bigger than a 20 ms frame
    out = resampler.process(chunk) + resampler.process(chunk[:8]) + resampler.flush()
    assert abs(len(out) // 2 - 5004 // 3) <= 1
    with pytest.raises(ValueError, match="whole number"):
        DownmixResampler().process(b"\x00" * 6)  # three samples: not whole stereo pairs


def _mono_out(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    stereo = np.empty(2 * len(left), dtype=np.int16)
    stereo[0::2], stereo[1::2] = left, right
    return _steady(_run(stereo))


def test_downmix_left_only_right_only_and_anti_phase() -> None:
    """Downmix is (L + R) / 2. Tolerances: one-sided input comes out at half amplitude
    (-6.02 dB ± 0.1 dB) for either side; anti-phase channels cancel to the dither floor
    (below 2 LSB RMS); a stereo pair at full scale does not wrap around (no int16 overflow)."""
    tone = to_int16(_tone(1000.0))
    silence = np.zeros_like(tone)
    for left, right in ((tone, silence), (silence, tone)):
        gain_db = 20 * np.log10(_rms_amplitude(_mono_out(left, right)) / (0.5 * 32767))
        assert abs(gain_db + 6.02) < 0.1, gain_db
    cancelled = _mono_out(tone, -tone)
    assert np.sqrt(np.mean(cancelled**2)) < 2.0
    loud = np.full(IN_RATE, 32767, dtype=np.int16)
    assert np.all(_mono_out(loud, loud) > 32000)


def test_drain_gives_what_the_stream_holds_and_the_samples_of_one_stream() -> None:
    """A spurt, drained on a silence frame, then the next spurt: the same samples as one stream
    with that silence in it (a few LSB: soxr's dither), and nothing held after the drain. Except the
    ~1.2 ms before the next spurt: one stream rings ahead of it there (its linear-phase filter
    looks ahead), which the drained stream, having sent those samples already, cannot."""
    spurt = _both(_tone(440.0, seconds=0.5))
    silence = np.zeros(FRAME_SAMPLES * 2, dtype=np.int16)
    resampler = DownmixResampler()
    out = b"".join(resampler.process(f) for f in frames(spurt, FRAME_SAMPLES * 2))
    assert len(out) // 2 < spurt.size // 2 // 3  # soxr holds part of it back
    out += resampler.drain(silence.tobytes())
    assert len(out) // 2 == (spurt.size // 2 + FRAME_SAMPLES) // 3  # everything, at once
    out += b"".join(resampler.process(f) for f in frames(spurt, FRAME_SAMPLES * 2)) + resampler.flush()
    whole = _run(np.concatenate([spurt, silence, spurt]))
    drained = np.frombuffer(out, dtype=np.int16)
    assert drained.size == whole.size
    difference = np.abs(drained.astype(np.int32) - whole)
    restart = (spurt.size // 2 + FRAME_SAMPLES) // 3
    look_ahead = round(0.0015 * OUT_RATE)
    assert difference[: restart - look_ahead].max() <= 4
    assert difference[restart:].max() <= 4
    assert difference.max() < 0.01 * 32767 * 0.5  # the pre-ring, 40 dB under the tone
