"""normalise_clip against a hostile corpus generated on the fly (nothing stored in git)."""

from __future__ import annotations

import hashlib
import io
import wave
import zipfile

import numpy as np
import pytest

from bot.audio.clip import ClipLimits, ClipRejected, NormalisedClip, normalise_clip
from tests.bot.audio.media import (
    encode_audio,
    flac_with_total_samples,
    set_wav_data_size,
    set_wav_rate,
    video_file,
    wav_bytes,
)
from tests.fakes.synth import speech_like, to_int16

LIMITS = ClipLimits()
SPEECH_S = 5.0


def _padded_speech(rate: int, seconds: float = SPEECH_S) -> np.ndarray:
    """1 s silence + speech + 1 s silence, so trimming has something to remove."""
    return np.concatenate([np.zeros(rate), speech_like(seconds, rate, seed=4), np.zeros(rate)])


def _read_wav(clip: NormalisedClip) -> tuple[int, int, int, np.ndarray]:
    with wave.open(io.BytesIO(clip.wav)) as w:
        return (
            w.getnchannels(),
            w.getsampwidth(),
            w.getframerate(),
            np.frombuffer(w.readframes(w.getnframes()), "<i2"),
        )


def _assert_stored(clip: NormalisedClip, expected_s: float) -> None:
    """Mono 24 kHz s16; duration = the speech plus ≤ 0.1 s margin each side (tolerance ±0.15 s)."""
    channels, width, rate, samples = _read_wav(clip)
    assert (channels, width, rate, clip.sample_rate) == (1, 2, 24_000, 24_000)
    assert clip.duration_s == pytest.approx(len(samples) / 24_000)
    assert expected_s - 0.05 <= clip.duration_s <= expected_s + 0.25
    assert np.abs(samples).max() > 1000  # the speech survived
    assert clip.sha256 == hashlib.sha256(clip.wav).hexdigest()


@pytest.mark.parametrize(
    ("fmt", "codec", "rate", "expected_format"),
    [
        ("wav", None, 48_000, "wav/pcm_s16le"),
        ("mp3", "libmp3lame", 44_100, "mp3/"),
        ("ogg", "libopus", 48_000, "ogg/opus"),
        ("flac", "flac", 22_050, "flac/flac"),
        ("wav", None, 192_000, "wav/pcm_s16le"),
        ("wav", None, 16_000, "wav/pcm_s16le"),
    ],
)
def test_valid_clips_become_mono_24k_wav(
    fmt: str, codec: str | None, rate: int, expected_format: str
) -> None:
    signal = _padded_speech(rate)
    data = (
        wav_bytes(to_int16(signal), rate)
        if codec is None
        else encode_audio(signal, rate, fmt=fmt, codec=codec)
    )
    clip = normalise_clip(data, LIMITS)
    _assert_stored(clip, SPEECH_S)
    assert clip.source_format.startswith(expected_format)
    assert clip.source_sample_rate == (48_000 if codec == "libopus" else rate)  # Opus always decodes at 48k


def test_stereo_input_is_downmixed() -> None:
    rate = 44_100
    mono = to_int16(_padded_speech(rate))
    clip = normalise_clip(wav_bytes(np.repeat(mono, 2), rate, channels=2), LIMITS)
    _assert_stored(clip, SPEECH_S)


def test_long_clip_is_capped_at_max_stored_seconds() -> None:
    rate = 16_000
    data = encode_audio(speech_like(45.0, rate), rate, fmt="flac", codec="flac")
    clip = normalise_clip(data, LIMITS)
    assert clip.duration_s == pytest.approx(LIMITS.max_stored_seconds)
    samples = _read_wav(clip)[3]
    assert abs(int(samples[-1])) < 50  # faded out at the cut, no click


def test_same_input_gives_the_same_hash() -> None:
    data = wav_bytes(to_int16(_padded_speech(16_000)), 16_000)
    assert normalise_clip(data, LIMITS).sha256 == normalise_clip(data, LIMITS).sha256


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("voice.wav", wav_bytes(to_int16(_padded_speech(16_000)), 16_000))
    return buffer.getvalue()


def _good_wav() -> bytes:
    return wav_bytes(to_int16(_padded_speech(16_000)), 16_000)


def _ten_minutes() -> bytes:
    # FLAC of a quiet tone: 10 minutes at 16 kHz encodes in well under a second, ~3 MB.
    t = np.arange(16_000 * 600)
    return encode_audio(0.01 * np.sin(t / 7.0), 16_000, fmt="flac", codec="flac")


def _lying_flac() -> bytes:
    """90 s of audio whose STREAMINFO claims 5 s: decoding must stop at the budget anyway."""
    data = encode_audio(speech_like(90.0, 16_000), 16_000, fmt="flac", codec="flac")
    return flac_with_total_samples(data, 5 * 16_000)


def _truncated_flac() -> bytes:
    data = encode_audio(_padded_speech(16_000, 20.0), 16_000, fmt="flac", codec="flac")
    return data[: len(data) // 3]


HOSTILE = {
    "empty": (lambda: b"", "empty"),
    "random-bytes": (lambda: np.random.default_rng(0).bytes(50_000), "not_audio"),
    "png-renamed-mp3": (lambda: b"\x89PNG\r\n\x1a\n" + bytes(4_000), "not_audio"),
    "zip": (_zip, "not_audio"),
    "text": (lambda: b"<html><body>not audio</body></html>" * 50, "not_audio"),
    "video-with-audio": (lambda: video_file(with_audio=True), "has_video"),
    "video-only": (lambda: video_file(with_audio=False), "has_video"),
    "ten-minutes": (_ten_minutes, "too_long"),
    "lying-flac-length": (_lying_flac, "too_long"),
    "oversized": (lambda: bytes(LIMITS.max_bytes + 1), "too_large"),
    "truncated-wav": (lambda: _good_wav()[: len(_good_wav()) // 2], "corrupt"),
    "wav-data-size-lies": (lambda: set_wav_data_size(_good_wav(), 10 * len(_good_wav())), "corrupt"),
    "wav-rate-zero": (lambda: set_wav_rate(_good_wav(), 0), "not_audio"),
    "wav-rate-absurd": (lambda: set_wav_rate(_good_wav(), 1_000_000_000), "corrupt"),
    "truncated-flac": (_truncated_flac, "corrupt"),
    "8khz": (lambda: wav_bytes(to_int16(_padded_speech(8_000)), 8_000), "low_sample_rate"),
    "wav-rate-lies-low": (lambda: set_wav_rate(_good_wav(), 8_000), "low_sample_rate"),
    "silence": (lambda: wav_bytes(np.zeros(16_000 * 5, np.int16), 16_000), "silent"),
    "faint-hiss": (
        lambda: wav_bytes(to_int16(np.random.default_rng(1).standard_normal(80_000) * 1e-4), 16_000),
        "silent",
    ),
    "too-short": (
        lambda: wav_bytes(
            to_int16(np.concatenate([np.zeros(16_000), speech_like(1.0, 16_000), np.zeros(16_000)])), 16_000
        ),
        "too_short",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_uploads_are_rejected_with_a_specific_code(case: str) -> None:
    make, code = HOSTILE[case]
    with pytest.raises(ClipRejected) as caught:
        normalise_clip(make(), LIMITS)
    assert caught.value.code == code, caught.value.reason
    assert caught.value.reason and str(caught.value) == caught.value.reason


def test_video_refusal_tells_the_user_what_to_do() -> None:
    with pytest.raises(ClipRejected, match="upload an audio file, not a video"):
        normalise_clip(video_file(with_audio=True), LIMITS)


def test_limits_are_configurable() -> None:
    data = _good_wav()
    with pytest.raises(ClipRejected) as caught:
        normalise_clip(data, ClipLimits(max_bytes=len(data) - 1))
    assert caught.value.code == "too_large"
    with pytest.raises(ClipRejected) as caught:
        normalise_clip(data, ClipLimits(min_seconds=6.0))
    assert caught.value.code == "too_short"
    with pytest.raises(ClipRejected) as caught:
        normalise_clip(data, ClipLimits(max_input_seconds=3.0))
    assert caught.value.code == "too_long"
