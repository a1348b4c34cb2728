"""The end-of-turn policy: today's defaults, and nonsense refused at construction."""

from __future__ import annotations

import pytest

from bot.conversation.turn_detection import DEFAULT_TURN_DETECTION, LocalTurnDetection


def test_the_defaults_are_the_bots_measured_behaviour() -> None:
    assert (DEFAULT_TURN_DETECTION.silence_end, DEFAULT_TURN_DETECTION.max_utterance,
            DEFAULT_TURN_DETECTION.onset_frames, DEFAULT_TURN_DETECTION.onset_grace) == (0.4, 30.0, 3, 0.5)


@pytest.mark.parametrize("kwargs", [{"silence_end": 0}, {"max_utterance": -1}, {"onset_grace": -0.1}])
def test_impossible_delays_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="silence_end"):
        LocalTurnDetection(**kwargs)
