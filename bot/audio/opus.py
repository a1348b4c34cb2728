"""libopus through ctypes: one decoder per speaker on the receive path, an encoder for tests/fakes.

Why ctypes on libopus rather than PyAV or ``discord.opus``: measured per 20 ms frame (see
``/work/shared/PERF_FLOOR.md`` and ``bench/audio_path.py``) raw libopus is ~43 µs, PyAV's
``CodecContext`` ~58 µs, ``discord.opus.Decoder`` ~98 µs. The library itself comes from the PyAV
wheel, which bundles it, so nothing is installed system-wide.

Decoders and encoders hold native state and are not thread-safe: use each from one thread (or
one asyncio task) at a time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import importlib.util
import sys
from pathlib import Path
from typing import Literal, Self

from bot.audio.frames import DISCORD_CHANNELS, DISCORD_SAMPLE_RATE, FRAME_SAMPLES, SAMPLE_WIDTH

# From opus_defines.h.
_OPUS_OK = 0
_OPUS_APPLICATION = {"voip": 2048, "audio": 2049, "lowdelay": 2051}
_OPUS_SET_BITRATE_REQUEST = 4002
_OPUS_SET_INBAND_FEC_REQUEST = 4012
_OPUS_SET_PACKET_LOSS_PERC_REQUEST = 4014

# Opus packets carry at most 120 ms of audio (RFC 6716 §3.2.5): 5760 samples per channel at 48 kHz.
MAX_FRAME_SAMPLES = 5760
# The output rates opus_decoder_create accepts.
_DECODE_RATES = frozenset({8000, 12000, 16000, 24000, 48000})
# Recommended ceiling for one encoded packet (opus_encode docs); Discord packets are far smaller.
_MAX_PACKET_BYTES = 4000

Application = Literal["voip", "audio", "lowdelay"]


class OpusError(RuntimeError):
    """libopus is missing or refused an operation."""


class OpusDecodeError(OpusError):
    """A packet could not be decoded (corrupt, truncated or not Opus). The decoder stays usable."""


def _bundled_candidates() -> list[Path]:
    """libopus copies shipped inside the PyAV wheel, found without importing ``av``."""
    spec = importlib.util.find_spec("av")
    if spec is None or not spec.submodule_search_locations:
        return []
    package = Path(next(iter(spec.submodule_search_locations)))
    site = package.parent
    if sys.platform == "darwin":
        patterns = [(package / ".dylibs", "libopus*.dylib")]
    elif sys.platform == "win32":
        patterns = [(site / "av.libs", "*opus*.dll"), (package, "*opus*.dll")]
    else:
        patterns = [(site / "av.libs", "libopus*.so*")]
    found: list[Path] = []
    for folder, pattern in patterns:
        found.extend(sorted(folder.glob(pattern)))
    return found


@functools.cache
def load_libopus(path: str | None = None) -> ctypes.CDLL:
    """Load libopus and declare the functions used here.

    Looks in this order: ``path`` if given; the copy bundled in the PyAV wheel; the system library
    (``ctypes.util.find_library('opus')``). Cached per ``path``: the library is process-wide.
    Raises ``OpusError`` naming every place it looked.
    """
    tried: list[str] = []
    candidates = [Path(path)] if path else _bundled_candidates()
    if not path:
        system = ctypes.util.find_library("opus")
        if system:
            candidates.append(Path(system))
    for candidate in candidates:
        try:
            lib = ctypes.CDLL(str(candidate))
        except OSError as exc:
            tried.append(f"{candidate} ({exc})")
            continue
        _declare(lib)
        return lib
    where = "; ".join(tried) or "no candidates (PyAV wheel has no bundled libopus, no system libopus)"
    raise OpusError(
        f"libopus could not be loaded. Install the 'av' wheel or a system libopus. Tried: {where}"
    )


def _declare(lib: ctypes.CDLL) -> None:
    c_int, c_int32, vp = ctypes.c_int, ctypes.c_int32, ctypes.c_void_p
    err_p = ctypes.POINTER(c_int)
    lib.opus_strerror.argtypes = [c_int]
    lib.opus_strerror.restype = ctypes.c_char_p
    lib.opus_decoder_create.argtypes = [c_int32, c_int, err_p]
    lib.opus_decoder_create.restype = vp
    lib.opus_decoder_destroy.argtypes = [vp]
    lib.opus_decoder_destroy.restype = None
    # data and pcm are passed as raw addresses/bytes: c_void_p/c_char_p convert fastest.
    lib.opus_decode.argtypes = [vp, ctypes.c_char_p, c_int32, vp, c_int, c_int]
    lib.opus_decode.restype = c_int
    lib.opus_packet_get_nb_samples.argtypes = [ctypes.c_char_p, c_int32, c_int32]
    lib.opus_packet_get_nb_samples.restype = c_int
    lib.opus_encoder_create.argtypes = [c_int32, c_int, c_int, err_p]
    lib.opus_encoder_create.restype = vp
    lib.opus_encoder_destroy.argtypes = [vp]
    lib.opus_encoder_destroy.restype = None
    lib.opus_encode.argtypes = [vp, ctypes.c_char_p, c_int, vp, c_int32]
    lib.opus_encode.restype = c_int32
    # opus_encoder_ctl is variadic; every request used here takes one opus_int32.
    lib.opus_encoder_ctl.argtypes = [vp, c_int, c_int32]
    lib.opus_encoder_ctl.restype = c_int


def _strerror(lib: ctypes.CDLL, code: int) -> str:
    message: bytes = lib.opus_strerror(code)
    return message.decode("ascii", "replace")


class _NativeState:
    """Owns one libopus encoder or decoder state: freed by close(), a with-block or the GC."""

    __slots__ = ("_lib", "_state")
    _kind = "codec"
    _destroy = ""  # the libopus function that frees this kind of state
    _lib: ctypes.CDLL
    _state: int | None

    def _live(self) -> int:
        if self._state is None:
            raise OpusError(f"{self._kind} is closed")
        return self._state

    def close(self) -> None:
        """Free the native state now. Idempotent."""
        state, self._state = self._state, None
        if state is not None:
            getattr(self._lib, self._destroy)(state)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # getattr: __init__ may have failed before _state was set.
        if getattr(self, "_state", None) is not None:
            self.close()


class OpusDecoder(_NativeState):
    """Opus → interleaved int16 PCM, one instance per speaker (decoder state is per stream:
    packet loss concealment and FEC depend on the previous packets).

    By default 48 kHz stereo, what Discord sends. ``OpusDecoder(sample_rate=16000, channels=1)``
    decodes straight to what speech-to-text wants: libopus then synthesises only the bands below
    8 kHz and downmixes a stereo stream itself, for ~40–60 % less CPU than decoding at 48 kHz,
    downmixing and resampling, and the same signal below 7 kHz (docs/decisions.md, measured by
    ``python -m bench.decode16k``).
    """

    _kind = "decoder"
    _destroy = "opus_decoder_destroy"

    __slots__ = ("_buf", "_buf_addr", "_channels", "_decode", "_frame_samples", "_max_samples", "_rate")

    def __init__(
        self,
        *,
        sample_rate: int = DISCORD_SAMPLE_RATE,
        channels: int = DISCORD_CHANNELS,
        lib: ctypes.CDLL | None = None,
    ) -> None:
        if sample_rate not in _DECODE_RATES or channels not in (1, 2):
            raise ValueError(f"libopus decodes at {sorted(_DECODE_RATES)} Hz to 1 or 2 channels, "
                             f"not {sample_rate} Hz / {channels}")
        self._lib = lib or load_libopus()
        error = ctypes.c_int(0)
        state = self._lib.opus_decoder_create(sample_rate, channels, ctypes.byref(error))
        if error.value != _OPUS_OK or not state:
            raise OpusError(f"opus_decoder_create failed: {_strerror(self._lib, error.value)}")
        self._state: int | None = state
        self._rate = sample_rate
        self._channels = channels
        self._max_samples = MAX_FRAME_SAMPLES * sample_rate // DISCORD_SAMPLE_RATE
        self._frame_samples = FRAME_SAMPLES * sample_rate // DISCORD_SAMPLE_RATE
        # Room for the longest legal packet (120 ms); decode writes into it, then one copy out.
        self._buf = (ctypes.c_int16 * (self._max_samples * channels))()
        self._buf_addr = ctypes.addressof(self._buf)
        self._decode = self._lib.opus_decode

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def channels(self) -> int:
        return self._channels

    def decode(self, packet: bytes) -> bytes:
        """Decode one packet (2.5–120 ms) to interleaved int16: for 20 ms, 3840 bytes at 48 kHz
        stereo, 640 at 16 kHz mono.

        Raises ``OpusDecodeError`` for an empty or corrupt packet; the decoder stays usable.
        """
        if not packet:
            raise OpusDecodeError("empty packet (use conceal() for a lost packet)")
        n = self._decode(self._live(), packet, len(packet), self._buf_addr, self._max_samples, 0)
        if n < 0:
            raise OpusDecodeError(f"opus_decode: {_strerror(self._lib, n)} ({len(packet)}-byte packet)")
        return ctypes.string_at(self._buf_addr, n * self._channels * SAMPLE_WIDTH)

    def conceal(self, next_packet: bytes | None = None) -> bytes:
        """Stand in for one lost 20 ms packet: exactly one 20 ms frame (3840 bytes at 48 kHz stereo).

        With ``next_packet`` (the packet after the gap), its in-band FEC copy of the lost frame is
        used when the sender included one; libopus falls back to concealment otherwise. Without it,
        plain packet loss concealment extrapolates from the previous frames.
        """
        if next_packet:
            n = self._decode(self._live(), next_packet, len(next_packet), self._buf_addr, self._frame_samples, 1)
        else:
            n = self._decode(self._live(), None, 0, self._buf_addr, self._frame_samples, 0)
        if n < 0:
            raise OpusDecodeError(f"opus_decode (concealment): {_strerror(self._lib, n)}")
        return ctypes.string_at(self._buf_addr, n * self._channels * SAMPLE_WIDTH)

    def packet_samples(self, packet: bytes) -> int:
        """Samples per channel the packet decodes to at this decoder's rate, without decoding it."""
        n: int = self._lib.opus_packet_get_nb_samples(packet, len(packet), self._rate)
        if n < 0:
            raise OpusDecodeError(f"opus_packet_get_nb_samples: {_strerror(self._lib, n)}")
        return n



class OpusEncoder(_NativeState):
    """48 kHz stereo int16 PCM → Opus packets. For tests, fakes and the loopback transport."""

    _kind = "encoder"
    _destroy = "opus_encoder_destroy"
    __slots__ = ("_buf", "_buf_addr")

    def __init__(
        self,
        *,
        application: Application = "audio",
        bitrate: int = 64_000,
        fec: bool = False,
        expected_loss_percent: int = 0,
        lib: ctypes.CDLL | None = None,
    ) -> None:
        self._lib = lib or load_libopus()
        if application not in _OPUS_APPLICATION:
            raise ValueError(f"application must be one of {sorted(_OPUS_APPLICATION)}")
        error = ctypes.c_int(0)
        state = self._lib.opus_encoder_create(
            DISCORD_SAMPLE_RATE, DISCORD_CHANNELS, _OPUS_APPLICATION[application], ctypes.byref(error)
        )
        if error.value != _OPUS_OK or not state:
            raise OpusError(f"opus_encoder_create failed: {_strerror(self._lib, error.value)}")
        self._state: int | None = state
        self._ctl(_OPUS_SET_BITRATE_REQUEST, bitrate)
        self._ctl(_OPUS_SET_INBAND_FEC_REQUEST, int(fec))
        self._ctl(_OPUS_SET_PACKET_LOSS_PERC_REQUEST, expected_loss_percent)
        self._buf = ctypes.create_string_buffer(_MAX_PACKET_BYTES)
        self._buf_addr = ctypes.addressof(self._buf)

    def _ctl(self, request: int, value: int) -> None:
        code = self._lib.opus_encoder_ctl(self._live(), request, value)
        if code != _OPUS_OK:
            raise OpusError(f"opus_encoder_ctl({request}, {value}): {_strerror(self._lib, code)}")

    def encode(self, pcm: bytes) -> bytes:
        """Encode one frame of interleaved stereo int16 (2.5, 5, 10, 20, 40 or 60 ms; 3840 bytes
        for 20 ms) into one packet."""
        per_sample = DISCORD_CHANNELS * SAMPLE_WIDTH
        if len(pcm) % per_sample:
            raise ValueError(f"{len(pcm)} bytes is not a whole number of stereo int16 samples")
        n = self._lib.opus_encode(
            self._live(), pcm, len(pcm) // per_sample, self._buf_addr, _MAX_PACKET_BYTES
        )
        if n < 0:
            raise OpusError(f"opus_encode: {_strerror(self._lib, n)} ({len(pcm)} bytes of PCM)")
        return ctypes.string_at(self._buf_addr, n)

