"""Where the FFmpeg executable is (the static build inside the imageio-ffmpeg wheel), and the
command line the player runs it with.

discord.py's ``FFmpegOpusAudio(..., executable=ffmpeg_executable())`` then needs no system
FFmpeg. The wheel's build has the libopus encoder and the ogg/opus muxers
(``/work/shared/PERF_FLOOR.md``). No environment is read here: configuration reads
``FFMPEG_BINARY`` once at startup and passes it in as ``override``.
"""

from __future__ import annotations

import os
import shutil

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


def ffmpeg_args(executable: str, *, sample_rate: int = TTS_SAMPLE_RATE) -> list[str]:
    """FFmpeg command: s16le mono on stdin -> Ogg Opus (48 kHz stereo, 20 ms frames) on stdout."""
    source = ffmpeg.input(
        "pipe:",
        f="s16le",
        ar=sample_rate,
        ac=1,
        # The format is given, so there is nothing to probe; probing would wait for input.
        probesize=32,
        analyzeduration=0,
        fflags="nobuffer",
    )
    # Discord wants stereo. Plain "-ac 2" upmixes mono at -3 dB per channel (measured); copying
    # the channel keeps the TTS level.
    source = source.filter("pan", "stereo|FL<FC|FR<FC")  # "<" renormalises: unity gain
    output = source.output(
        "pipe:",
        f="ogg",
        acodec="libopus",
        ar=48_000,
        ac=2,
        frame_duration=20,
        application="voip",
        fec=1,
        packet_loss=10,
        # One page per packet, flushed at once; the default 1 s pages hold audio back that long.
        page_duration=20_000,
        flush_packets=1,
        map_metadata=-1,
        **{"b:a": OPUS_BITRATE},
    )
    args: list[str] = output.global_args("-hide_banner", "-nostdin", "-loglevel", "error").compile(cmd=executable)
    return args
