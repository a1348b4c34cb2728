"""Builds audio and video files in memory with PyAV and the stdlib, for the hostile-upload corpus."""

from __future__ import annotations

import io
import struct
import wave
from fractions import Fraction

import av
import numpy as np


def wav_bytes(samples: np.ndarray, rate: int, channels: int = 1) -> bytes:
    """int16 samples (interleaved if stereo) → a canonical 44-byte-header WAV."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()


def set_wav_rate(data: bytes, rate: int) -> bytes:
    """Rewrite the fmt chunk's sample rate (canonical header: offset 24) without touching the audio."""
    return data[:24] + struct.pack("<I", rate) + data[28:]


def set_wav_data_size(data: bytes, size: int) -> bytes:
    """Rewrite the data chunk's declared size (canonical header: offset 40)."""
    assert data[36:40] == b"data"
    return data[:40] + struct.pack("<I", size) + data[44:]


def encode_audio(
    signal: np.ndarray, rate: int, *, fmt: str, codec: str, bitrate: int | None = None, channels: int = 1
) -> bytes:
    """Float mono signal in [-1, 1] → an encoded file (e.g. fmt='ogg', codec='libopus')."""
    buffer = io.BytesIO()
    layout = "mono" if channels == 1 else "stereo"
    with av.open(buffer, mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        if bitrate:
            stream.bit_rate = bitrate
        ctx = stream.codec_context
        sample_format = ctx.format.name if ctx.format else "s16"
        frame_size = ctx.frame_size or 1024
        pcm = np.clip(signal, -1, 1)
        pcm = np.repeat(pcm[None, :], channels, axis=0)
        pts = 0
        for start in range(0, pcm.shape[1], frame_size):
            chunk = pcm[:, start : start + frame_size]
            frame = _frame(chunk, sample_format, layout, rate)
            frame.pts = pts
            frame.time_base = Fraction(1, rate)
            pts += chunk.shape[1]
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def _frame(chunk: np.ndarray, sample_format: str, layout: str, rate: int) -> av.AudioFrame:
    planar = sample_format.endswith("p")
    base = sample_format.rstrip("p")
    if base == "s16":
        data = np.round(chunk * 32767).astype(np.int16)
    elif base == "s32":
        data = np.round(chunk * 2147483647).astype(np.int32)
    else:
        data = chunk.astype(np.float32)
    if not planar:
        data = data.T.reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=sample_format, layout=layout)
    frame.sample_rate = rate
    return frame


def video_file(*, with_audio: bool, seconds: float = 1.0) -> bytes:
    """A tiny MP4 (mpeg4 video, optionally AAC audio)."""
    buffer = io.BytesIO()
    rate = 48_000
    with av.open(buffer, mode="w", format="mp4") as container:
        video = container.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream("aac", rate=rate, layout="mono") if with_audio else None
        for i in range(int(seconds * 10)):
            image = np.full((48, 64, 3), (i * 20) % 255, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if audio is not None:
            t = np.arange(int(seconds * rate)) / rate
            tone = (0.3 * np.sin(2 * np.pi * 440 * t))[None, :].astype(np.float32)
            for start in range(0, tone.shape[1], 1024):
                chunk = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(tone[:, start : start + 1024]), format="fltp", layout="mono"
                )
                chunk.sample_rate = rate
                chunk.pts = start
                container.mux(audio.encode(chunk))
            container.mux(audio.encode(None))
    return buffer.getvalue()


def flac_with_total_samples(data: bytes, total: int) -> bytes:
    """Rewrite a FLAC STREAMINFO's 36-bit total-samples field (a lying length header)."""
    assert data[:4] == b"fLaC"
    info = bytearray(data)
    # fLaC(4) + block header(4) + min/max block(4) + min/max frame(6) = 18; the field spans the
    # low 4 bits of byte 21 and bytes 22..25 (after 20 bits rate, 3 channels, 5 bps).
    offset = 18 + 3
    info[offset] = (info[offset] & 0xF0) | ((total >> 32) & 0x0F)
    info[offset + 1 : offset + 5] = (total & 0xFFFFFFFF).to_bytes(4, "big")
    return bytes(info)
