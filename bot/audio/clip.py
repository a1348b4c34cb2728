"""Validate and normalise a user's reference voice clip for ``/voice set``.

Synchronous and CPU-bound: run it in a worker thread. Every refusal is a ``ClipRejected`` with a
stable ``code`` (for tests, metrics and i18n) and a ``reason`` written for the user.

Trust nothing the upload says about itself: the file name and content type are never looked at
(FFmpeg probes the bytes), declared durations only ever make us refuse *earlier*, and decoding
stops once it has produced ``max_input_seconds`` (+1 s) of audio whatever the header promised.
Resampling to 24 kHz is libsoxr (the same library as the receive path) on float32.
"""

from __future__ import annotations

import hashlib
import io
import math
import struct
from dataclasses import dataclass

import av
import numpy as np
import soxr

from bot.audio.frames import TTS_SAMPLE_RATE
from bot.audio.wav import pcm16_to_wav

STORED_SAMPLE_RATE = TTS_SAMPLE_RATE  # stored at the rate the TTS speaks, so it is sent as is
_MAX_PLAUSIBLE_RATE = 768_000  # above any real recording format; a bigger header value is a lie
_DECODE_SLACK_S = 1.0
_TRUNCATION_SLACK_S = 1.0
_WINDOW_S = 0.020
_SILENCE_DBFS = -50.0  # loudest 20 ms window quieter than this: nothing usable was recorded
_TRIM_BELOW_PEAK_DB = 40.0  # edges quieter than the loudest window by this much are trimmed
_TRIM_MARGIN_S = 0.10  # keep a little room so a soft onset or decay is not cut
_FADE_S = 0.010  # fade applied where max_stored_seconds cuts mid-sound, to avoid a click
_IMAGE_FORMATS = ("image2", "_pipe", "gif", "apng", "webp")
_MiB = 1024 * 1024


class ClipRejected(ValueError):
    """The upload cannot be used as a voice reference. ``reason`` is shown to the user."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True, slots=True)
class ClipLimits:
    max_bytes: int = 10 * _MiB
    max_input_seconds: float = 60.0
    min_seconds: float = 2.0
    max_stored_seconds: float = 30.0
    min_sample_rate: int = 16_000


@dataclass(frozen=True, slots=True)
class NormalisedClip:
    wav: bytes  # mono 24 kHz signed 16-bit WAV, edges trimmed, at most max_stored_seconds
    sample_rate: int
    duration_s: float
    sha256: str  # hex digest of ``wav``
    source_format: str  # e.g. "wav/pcm_s16le", "ogg/opus"
    source_sample_rate: int


DEFAULT_LIMITS = ClipLimits()


def normalise_clip(data: bytes, limits: ClipLimits = DEFAULT_LIMITS) -> NormalisedClip:
    """Decode ``data`` (any container FFmpeg knows), check it, and return the stored form."""
    if not data:
        raise ClipRejected("The file is empty.", "empty")
    if len(data) > limits.max_bytes:
        raise ClipRejected(
            f"The file is {len(data) / _MiB:.1f} MiB; the limit is {limits.max_bytes / _MiB:.0f} MiB.",
            "too_large",
        )
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise ClipRejected(
            "That file is not audio I can read (try WAV, MP3, OGG or FLAC).", "not_audio"
        ) from exc
    with container:
        samples, source_rate, source_format = _decode(container, data, limits)
    return _finish(samples, source_rate, source_format, limits)


def _decode(
    container: av.container.InputContainer, data: bytes, limits: ClipLimits
) -> tuple[np.ndarray, int, str]:
    fmt = container.format.name
    if any(marker in fmt for marker in _IMAGE_FORMATS):
        raise ClipRejected("That file is an image, not audio.", "not_audio")
    videos = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if videos:
        raise ClipRejected("That file has video in it: upload an audio file, not a video.", "has_video")
    if not container.streams.audio:
        raise ClipRejected("That file has no audio in it.", "not_audio")
    stream = container.streams.audio[0]
    ctx = stream.codec_context
    if ctx is None or ctx.codec is None:
        raise ClipRejected(
            "That audio format is not one I can decode (try WAV, MP3, OGG or FLAC).", "not_audio"
        )
    rate = ctx.sample_rate or 0
    if not 0 < rate <= _MAX_PLAUSIBLE_RATE:
        raise ClipRejected("The file's header is corrupt (impossible sample rate).", "corrupt")
    source_format = f"{fmt}/{ctx.codec.name}"

    declared = _declared_seconds(container, stream)
    if declared is not None and declared > limits.max_input_seconds + _DECODE_SLACK_S:
        raise _too_long(limits, f"{declared:.0f} s")
    if rate < limits.min_sample_rate:
        raise ClipRejected(
            f"The recording is {rate / 1000:g} kHz; voice cloning needs at least "
            f"{limits.min_sample_rate / 1000:g} kHz (phone-quality audio is too muffled).",
            "low_sample_rate",
        )
    if fmt == "wav":
        _check_wav_length(data)

    budget = int((limits.max_input_seconds + _DECODE_SLACK_S) * rate)
    resampler = soxr.ResampleStream(rate, STORED_SAMPLE_RATE, 1, dtype="float32", quality="HQ")
    chunks: list[np.ndarray] = []
    decoded = 0
    try:
        for packet in container.demux(stream):
            for frame in packet.decode():
                if frame.sample_rate != rate:
                    raise ClipRejected("The file changes sample rate part-way through.", "corrupt")
                mono = _mono_float(frame)
                decoded += mono.size
                if decoded > budget:
                    raise _too_long(limits, f"more than {limits.max_input_seconds:.0f} s")
                chunks.append(resampler.resample_chunk(mono))
    except av.FFmpegError as exc:
        if decoded == 0:
            raise ClipRejected(
                "That file is not audio I can read (try WAV, MP3, OGG or FLAC).", "not_audio"
            ) from exc
        raise ClipRejected(
            "The file is damaged part-way through (decoding failed); re-export or re-record it.", "corrupt"
        ) from exc
    if decoded == 0:
        raise ClipRejected("That file contains no decodable audio.", "not_audio")
    if declared is not None and declared - decoded / rate > max(_TRUNCATION_SLACK_S, 0.2 * declared):
        raise ClipRejected(
            f"The file is truncated: it says {declared:.1f} s but holds {decoded / rate:.1f} s.", "corrupt"
        )
    chunks.append(resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
    return np.concatenate(chunks), rate, source_format


def _too_long(limits: ClipLimits, found: str) -> ClipRejected:
    return ClipRejected(
        f"The clip is {found} long; upload at most {limits.max_input_seconds:.0f} s "
        f"(10–{limits.max_stored_seconds:.0f} s of clear speech works best).",
        "too_long",
    )


def _declared_seconds(container: av.container.InputContainer, stream: av.audio.AudioStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    return None


def _check_wav_length(data: bytes) -> None:
    """FFmpeg sizes a WAV by the bytes present, silently ignoring a data chunk that claims more:
    compare the header's promise with what arrived (a cut-off upload or a forged header)."""
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        return  # RF64/BW64 or unusual variants: leave them to FFmpeg
    pos = 12
    while pos + 8 <= len(data):
        tag = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I" if data[:4] == b"RIFF" else ">I", data, pos + 4)
        if tag == b"data":
            # 0 and 0xFFFFFFFF are the streaming-writer conventions for "unknown length".
            if size not in (0, 0xFFFFFFFF) and pos + 8 + size > len(data):
                raise ClipRejected(
                    f"The WAV file is truncated: its header promises {size} bytes of audio, "
                    f"{len(data) - pos - 8} arrived.",
                    "corrupt",
                )
            return
        pos += 8 + size + (size & 1)


_INT_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}


def _mono_float(frame: av.AudioFrame) -> np.ndarray:
    """Any sample format and layout → mono float32 (channel mean)."""
    array = frame.to_ndarray()
    channels = frame.layout.nb_channels
    if not frame.format.is_planar:
        array = array.reshape(-1, channels).T
    name = frame.format.name.rstrip("p")
    if name in _INT_SCALE:
        scale = _INT_SCALE[name]
        floats = array.astype(np.float32)
        if name == "u8":
            floats -= 128.0
        floats /= scale
    else:
        floats = array.astype(np.float32, copy=False)
    return floats.mean(axis=0, dtype=np.float32) if channels > 1 else np.ascontiguousarray(floats[0])


def _finish(samples: np.ndarray, source_rate: int, source_format: str, limits: ClipLimits) -> NormalisedClip:
    rate = STORED_SAMPLE_RATE
    window = int(_WINDOW_S * rate)
    count = math.ceil(samples.size / window)
    padded = np.zeros(count * window, dtype=np.float32)
    padded[: samples.size] = samples
    power = np.mean(padded.reshape(count, window).astype(np.float64) ** 2, axis=1)
    level_db = 10 * np.log10(power + 1e-20)
    peak_db = float(level_db.max())
    if peak_db < _SILENCE_DBFS:
        raise ClipRejected("The clip is silent: I could not hear anyone in it.", "silent")
    loud = np.flatnonzero(level_db >= max(_SILENCE_DBFS, peak_db - _TRIM_BELOW_PEAK_DB))
    margin = int(_TRIM_MARGIN_S * rate)
    start = max(0, int(loud[0]) * window - margin)
    end = min(samples.size, (int(loud[-1]) + 1) * window + margin)
    trimmed = samples[start:end]
    if trimmed.size < limits.min_seconds * rate:
        raise ClipRejected(
            f"Only {trimmed.size / rate:.1f} s of sound after trimming silence; "
            f"record at least {limits.min_seconds:g} s of speech.",
            "too_short",
        )
    cap = int(limits.max_stored_seconds * rate)
    if trimmed.size > cap:
        trimmed = trimmed[:cap].copy()
        fade = int(_FADE_S * rate)
        trimmed[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    pcm = np.clip(np.rint(trimmed * 32767.0), -32768, 32767).astype("<i2")
    wav = pcm16_to_wav(pcm.tobytes(), sample_rate=rate)
    return NormalisedClip(
        wav=wav,
        sample_rate=rate,
        duration_s=pcm.size / rate,
        sha256=hashlib.sha256(wav).hexdigest(),
        source_format=source_format,
        source_sample_rate=source_rate,
    )
