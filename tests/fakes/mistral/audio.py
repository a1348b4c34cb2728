"""Audio the fake Mistral produces and reads: a deterministic voice stand-in and its encodings."""

from __future__ import annotations

import hashlib
import io
import wave
from collections import OrderedDict

import av
import numpy as np

TTS_SAMPLE_RATE = 24_000
# Roughly 15 characters a second, the pace of conversational English speech.
SECONDS_PER_CHARACTER = 0.065
_FUNDAMENTAL_HZ = 220.0


def speech_samples(text: str, *, seconds_per_character: float = SECONDS_PER_CHARACTER) -> np.ndarray:
    """A 220 Hz tone with two harmonics, as long as ``text`` would take to say, float32 in [-0.6, 0.6]."""
    count = max(1, round(len(text) * seconds_per_character * TTS_SAMPLE_RATE))
    t = np.arange(count, dtype=np.float64) / TTS_SAMPLE_RATE
    wave_ = (
        0.4 * np.sin(2 * np.pi * _FUNDAMENTAL_HZ * t)
        + 0.15 * np.sin(2 * np.pi * 2 * _FUNDAMENTAL_HZ * t)
        + 0.05 * np.sin(2 * np.pi * 3 * _FUNDAMENTAL_HZ * t)
    )
    # 5 ms fades so concatenated replies do not click.
    fade = min(count // 2, TTS_SAMPLE_RATE // 200)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        wave_[:fade] *= ramp
        wave_[-fade:] *= ramp[::-1]
    return wave_.astype(np.float32)


def encode_speech(samples: np.ndarray, response_format: str, *, opus_frame_ms: float = 20) -> bytes:
    """Encode float32 24 kHz mono samples the way the API's ``response_format`` names them.

    ``opus``: Ogg Opus, mono 24 kHz as the API says its output is, in ``opus_frame_ms`` frames,
    one packet per Ogg page (the muxer's page duration is one frame), so a stream can be cut
    into pieces of any duration on page boundaries (``opus_pieces``)."""
    if response_format == "pcm":
        return samples.astype("<f4").tobytes()
    if response_format == "wav":
        return wav_bytes(float_to_int16(samples), TTS_SAMPLE_RATE)
    return _encode_with_av(samples, response_format, opus_frame_ms)


def opus_pieces(ogg: bytes, seconds: float) -> list[bytes]:
    """``ogg`` cut on page boundaries into pieces of ~``seconds`` of audio each, on the same
    real-time schedule as ``pcm`` chunks: piece k ends with the first page whose granule position
    (48 kHz for Opus) reaches (k + 1) x ``seconds``. The header pages go with the first piece."""
    pieces: list[bytes] = []
    step = max(1.0, seconds * 48_000)
    start, offset, target = 0, 0, step
    while offset < len(ogg):
        page = offset
        segments = ogg[page + 26]
        offset = page + 27 + segments + sum(ogg[page + 27:page + 27 + segments])
        granule = int.from_bytes(ogg[page + 6:page + 14], "little", signed=True)
        if granule >= target:
            pieces.append(ogg[start:offset])
            start = offset
            while target <= granule:
                target += step
    if start < len(ogg):
        pieces.append(ogg[start:])
    return pieces


def float_to_int16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767).round().astype("<i2").tobytes()


def wav_bytes(pcm16: bytes, sample_rate: int, channels: int = 1) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(sample_rate)
        writer.writeframes(pcm16)
    return buffer.getvalue()


def read_wav(data: bytes) -> tuple[bytes, int, int]:
    """(int16 frames, sample rate, channels) of a 16-bit WAV file; raises ``wave.Error`` otherwise."""
    with wave.open(io.BytesIO(data), "rb") as reader:
        if reader.getsampwidth() != 2:
            raise wave.Error("only 16-bit WAV is understood by the fake")
        return reader.readframes(reader.getnframes()), reader.getframerate(), reader.getnchannels()


_AV_FORMATS = {
    # response_format: (container, codec, sample rate the codec needs)
    "mp3": ("mp3", "libmp3lame", TTS_SAMPLE_RATE),
    "flac": ("flac", "flac", TTS_SAMPLE_RATE),
    "opus": ("ogg", "libopus", TTS_SAMPLE_RATE),
}


def _encode_with_av(samples: np.ndarray, response_format: str, opus_frame_ms: float) -> bytes:
    container_name, codec, rate = _AV_FORMATS[response_format]
    out = io.BytesIO()
    options = {"page_duration": str(round(opus_frame_ms * 1000))} if response_format == "opus" else {}
    with av.open(out, "w", format=container_name, options=options) as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        if response_format == "opus":
            stream.codec_context.options = {"frame_duration": f"{opus_frame_ms:g}"}
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono", rate=rate)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = TTS_SAMPLE_RATE
        for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(resampled):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


class SpeechCache:
    """The last ``size`` encodings of fake speech, by what determines them."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._items: OrderedDict[tuple[str, float, str, float], bytes] = OrderedDict()
        self.hits = 0

    def get(self, text: str, seconds_per_character: float, response_format: str, frame_ms: float) -> bytes:
        key = (text, seconds_per_character, response_format, frame_ms)
        if (audio := self._items.get(key)) is not None:
            self._items.move_to_end(key)
            self.hits += 1
            return audio
        samples = speech_samples(text, seconds_per_character=seconds_per_character)
        audio = self._items[key] = encode_speech(samples, response_format, opus_frame_ms=frame_ms)
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return audio


def default_transcript(pcm: bytes) -> str:
    """Deterministic text for audio nobody scripted: depends only on the bytes received."""
    if not pcm:
        return ""
    digest = hashlib.sha256(pcm).hexdigest()[:8]
    return f"utterance {digest} lasting {len(pcm) // 32} milliseconds"
