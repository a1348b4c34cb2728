"""Where the FFmpeg executable is (the static build inside the imageio-ffmpeg wheel), and the
command line the player runs it with.

discord.py's ``FFmpegOpusAudio(..., executable=ffmpeg_executable())`` then needs no system
FFmpeg. The wheel's build has the libopus encoder and the ogg/opus and NUT muxers
(``/work/shared/PERF_FLOOR.md``). No environment is read here: configuration reads
``FFMPEG_BINARY`` once at startup and passes it in as ``override``.
"""

from __future__ import annotations

import os
import shutil
import struct

import ffmpeg
import imageio_ffmpeg

from bot.audio.frames import TTS_SAMPLE_RATE

OPUS_BITRATE = "64k"


def ffmpeg_executable(override: str | None = None) -> str:
    """Path of the FFmpeg binary to run.

    ``override`` (a path, or a command name looked up on PATH) wins when given; it must exist
    and be executable, else ``FileNotFoundError`` names it. Otherwise the imageio-ffmpeg binary.
    """
    if override:
        found = shutil.which(override)
        if found is None:
            raise FileNotFoundError(
                f"FFMPEG_BINARY={override!r} is neither an executable file nor a command on PATH"
            )
        return os.path.abspath(found)
    return str(imageio_ffmpeg.get_ffmpeg_exe())


# FFmpeg's demuxer hands on input only in whole blocks: the raw s16le demuxer's are ~0.1 s (2048
# samples = 85 ms at 24 kHz), so audio short of a block sat in FFmpeg until more came. The WAV
# demuxer takes a block size (``max_size``). One block is one Opus frame, 20 ms (480 float32
# samples): the encoder can start a packet only once it has a whole frame anyway, so packets come
# exactly when they did with 5 ms blocks, while FFmpeg's demuxer, decoder, filter, encoder and
# muxer threads pass a quarter of the blocks (FFmpeg CPU per second of speech -15 to -20 %,
# ``bench.encoder_cost``; 1 ms blocks had cost 4.1 % of a core per reply, 5 ms 2.3 %). The input is
# float32 rather than s16: on 16-bit PCM the WAV demuxer first reads 64 KB (1.4 s) to look for
# S/PDIF data.
INPUT_BLOCK_BYTES = 1920
INPUT_SAMPLE_BYTES = 4  # float32


def wav_stream_header(sample_rate: int = TTS_SAMPLE_RATE) -> bytes:
    """A WAV header for an endless float32 mono stream (sizes unknown: ``ignore_length``)."""
    unknown = 0xFFFFFFFF
    fmt = struct.pack("<HHIIHH", 3, 1, sample_rate, sample_rate * INPUT_SAMPLE_BYTES, INPUT_SAMPLE_BYTES, 32)
    return (b"RIFF" + struct.pack("<I", unknown) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"data" + struct.pack("<I", unknown))


def ffmpeg_args(executable: str, *, source: str = "pcm") -> list[str]:
    """FFmpeg command: float32 mono WAV on stdin (``wav_stream_header`` first; ``source="pcm"``) or
    Ogg Opus (``"opus"``: decoded) -> stereo Opus in NUT (20 ms frames, for 48 kHz playback) on
    stdout, each packet written the moment it is encoded. ``"copy"``: Ogg Opus in, its packets
    copied to NUT as they are (only for single 20 ms frames: ``bot.audio.ogg_opus``)."""
    if source == "copy":
        return copy_args(executable)
    if source == "opus":
        stream = ogg_input()
    else:
        stream = ffmpeg.input(
            "pipe:",
            f="wav",
            max_size=INPUT_BLOCK_BYTES,
            ignore_length=1,
            # The header says it all, so there is nothing to probe; probing would wait for input.
            # The probe still reads one block, and "-fflags nobuffer" threw that block away: every
            # reply lost its first 5 ms (bench.encoder_cost: output 1.4 ms after the source, not 6.5).
            probesize=32,
            analyzeduration=0,
        )
    return _encode_args(executable, stream)


def ogg_input() -> ffmpeg.nodes.FilterableStream:
    """Ogg Opus on stdin. The Opus header says it all: no probing, which would hold the first
    packets until the probe's bytes or time were reached."""
    return ffmpeg.input("pipe:", f="ogg", probesize=32, analyzeduration=0)


def copy_args(executable: str) -> list[str]:
    """FFmpeg command: Ogg Opus (single 20 ms frames) on stdin -> the same packets in NUT on
    stdout, copied, each written the moment its page is read. Mono: Discord's decoder plays a
    mono Opus stream on both channels."""
    output = ogg_input().output("pipe:", f="nut", write_index=0, acodec="copy", flush_packets=1, map_metadata=-1)
    args: list[str] = output.global_args("-hide_banner", "-nostdin", "-loglevel", "error").compile(cmd=executable)
    return args


def _encode_args(executable: str, source: ffmpeg.nodes.FilterableStream) -> list[str]:
    # Discord wants stereo. Plain "-ac 2" upmixes mono at -3 dB per channel (measured); copying
    # the channel keeps the TTS level.
    source = source.filter("pan", "stereo|FL<FC|FR<FC")  # "<" renormalises: unity gain
    output = source.output(
        "pipe:",
        # NUT, not Ogg: FFmpeg's Ogg muxer holds the last two packets back (~40 ms), NUT none
        # (bot/voice/nut.py reads it).
        f="nut",
        write_index=0,
        acodec="libopus",
        # Opus packets carry no sample rate: a 48 kHz decoder (Discord's) plays packets encoded
        # from 24 kHz input as they are, and libopus encodes at the TTS's own rate (its 12 kHz
        # band is all the TTS has). Resampling to 48 kHz first was work for nothing: 11 % of
        # FFmpeg's CPU per reply (10 s of speech: 0.178 -> 0.159 s).
        ar=TTS_SAMPLE_RATE,
        ac=2,
        frame_duration=20,
        application="voip",
        fec=1,
        packet_loss=10,
        # libopus' complexity 5, not FFmpeg's default 10: FFmpeg CPU per second of speech -23 %
        # for +0.14 dB log-spectral distance to the source at 0-8 kHz, none at 8-12 kHz, the same
        # SNR (dropping from 64 to 56 kb/s costs +0.25 dB); 8 and 9 encode as 10 does, 4 as 5, and
        # 3 costs +0.32 dB (``bench.encoder_cost``, docs/decisions.md).
        compression_level=5,
        flush_packets=1,
        map_metadata=-1,
        **{"b:a": OPUS_BITRATE},
    )
    args: list[str] = output.global_args("-hide_banner", "-nostdin", "-loglevel", "error").compile(cmd=executable)
    return args
