"""PCM conversions the Mistral services need at their boundary (pure, no I/O)."""

from __future__ import annotations

import numpy as np

_FLOAT32_BYTES = 4


class Float32Clipper:
    """Cleans a stream of float32 little-endian PCM chunks for playback, chunk by chunk, and keeps
    it float32 (what FFmpeg reads: no int16 round trip, which cost two conversions per chunk on the
    event loop).

    Chunks from the network need not end on a sample boundary: the remainder is carried into the
    next chunk. Values are clipped to [-1, 1] (±inf too); NaN becomes silence.
    """

    def __init__(self) -> None:
        self._carry = b""

    def convert(self, chunk: bytes) -> bytes:
        data = self._carry + chunk if self._carry else chunk
        usable = len(data) - len(data) % _FLOAT32_BYTES
        self._carry = data[usable:]
        if not usable:
            return b""
        samples = np.clip(np.frombuffer(data, dtype="<f4", count=usable // _FLOAT32_BYTES), -1.0, 1.0)
        nan = np.isnan(samples)
        if nan.any():
            samples[nan] = 0.0
        clipped: bytes = samples.tobytes()
        return clipped

    @property
    def pending(self) -> int:
        """Bytes of an incomplete sample held back (0 once a stream ended cleanly)."""
        return len(self._carry)
