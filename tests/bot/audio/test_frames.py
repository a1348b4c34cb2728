"""Loudness of a PCM piece: what tells speech resuming from a leftover quiet frame."""

from __future__ import annotations

import numpy as np

from bot.audio.frames import loud


def test_loud_is_speech_level_not_quiet_frames_or_nothing() -> None:
    assert loud(np.full(320, 4_096, dtype=np.int16).tobytes())
    assert not loud(np.full(320, 150, dtype=np.int16).tobytes())  # RMS 150: a quiet frame
    assert not loud(bytes(640)) and not loud(b"") and not loud(b"\x00")  # silence, nothing, half a sample
