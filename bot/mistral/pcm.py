"""PCM handling the Mistral services need at their boundary (pure, no I/O)."""

from __future__ import annotations

_FLOAT32_BYTES = 4


class Float32Chunks:
    """Re-cuts a stream of float32 PCM chunks on sample boundaries, and nothing else: the samples
    stay as the API sent them, float32 as FFmpeg reads them, and the player clips them on its pipe
    thread (``bot.audio.playback_pcm``). Converting them to int16 here cost two numpy conversions
    per chunk on the event loop (float32 → int16 here, back to float32 for FFmpeg).

    Chunks from the network need not end on a sample boundary: the remainder is carried into the
    next chunk.
    """

    def __init__(self) -> None:
        self._carry = b""

    def whole_samples(self, chunk: bytes) -> bytes:
        data = self._carry + chunk if self._carry else chunk
        usable = len(data) - len(data) % _FLOAT32_BYTES
        self._carry = data[usable:]
        return data if usable == len(data) else data[:usable]

    @property
    def pending(self) -> int:
        """Bytes of an incomplete sample held back (0 once a stream ended cleanly)."""
        return len(self._carry)
