"""Where the FFmpeg executable is: the static build inside the imageio-ffmpeg wheel.

discord.py's ``FFmpegOpusAudio(..., executable=ffmpeg_executable())`` then needs no system
FFmpeg. The wheel's build has the libopus encoder and the ogg/opus muxers
(``/work/shared/PERF_FLOOR.md``). No environment is read here: configuration reads
``FFMPEG_BINARY`` once at startup and passes it in as ``override``.
"""

from __future__ import annotations

import os
import shutil

import imageio_ffmpeg


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
    return imageio_ffmpeg.get_ffmpeg_exe()
