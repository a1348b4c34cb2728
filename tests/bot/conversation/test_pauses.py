"""PauseStream: when listening streams silence through a member's pause, in injected time."""

from __future__ import annotations

import pytest

from bot.conversation.pauses import FRAME, QUIET_PACKETS, QUIET_SLACK, SLACK, PauseStream


def test_after_a_loud_packet_silence_waits_for_the_slack_then_covers_all_the_time_since() -> None:
    pauses = PauseStream(0.0)
    assert pauses.packet(1.0, loud=True)
    assert pauses.due() == pytest.approx(1.0 + SLACK)
    assert pauses.fill(1.0 + SLACK) == round(SLACK / FRAME)  # the server's clock matches ours
    assert pauses.due() == pytest.approx(1.0 + SLACK + FRAME)  # then 20 ms per 20 ms


def quiet_run(pauses: PauseStream, start: float, count: int = QUIET_PACKETS) -> float:
    """``count`` quiet packets from ``start``, 20 ms apart; the time of the last."""
    for index in range(count):
        pauses.packet(start + index * FRAME, loud=False)
    return start + (count - 1) * FRAME


def test_in_a_pause_silence_is_streamed_from_the_next_frame_not_the_slack_later() -> None:
    # The client's silence frames end a talk spurt: streaming the pause 80 ms late made the
    # server's pause, its turn events and the last words' text come up to 80 ms late.
    pauses = PauseStream(0.0)
    pauses.packet(1.0, loud=True)
    last = quiet_run(pauses, 1.02)
    assert pauses.due() == pytest.approx(last + FRAME + QUIET_SLACK)
    assert pauses.fill(last + FRAME + QUIET_SLACK) == 1
    assert pauses.due() == pytest.approx(last + 2 * FRAME)


def test_one_quiet_frame_between_words_is_no_pause() -> None:
    pauses = PauseStream(0.0)
    pauses.packet(1.0, loud=True)
    last = quiet_run(pauses, 1.02, QUIET_PACKETS - 1)
    assert pauses.due() == pytest.approx(last + SLACK)


def test_a_quiet_packet_while_silence_streams_is_dropped_and_the_stream_keeps_real_time() -> None:
    pauses = PauseStream(0.0)
    last = quiet_run(pauses, 1.0)
    sent = pauses.fill(last + FRAME + QUIET_SLACK)
    assert not pauses.packet(last + FRAME + QUIET_SLACK + 0.002, loud=False)  # a late silence frame
    now = last + FRAME + QUIET_SLACK
    while now < 1.5:
        now = pauses.due()
        sent += pauses.fill(now)
    # Audio sent (the packets, then silence) never runs ahead of the time that passed.
    assert (QUIET_PACKETS + sent) * FRAME <= now - 1.0 + FRAME + 1e-9


def test_a_loud_packet_while_silence_streams_is_sent_and_speech_timing_starts_again() -> None:
    pauses = PauseStream(0.0)
    pauses.packet(1.0, loud=False)
    pauses.fill(1.08)
    assert pauses.packet(1.09, loud=True)
    assert not pauses.filling
    assert pauses.due() == pytest.approx(1.09 + SLACK)
    assert pauses.silent_for(1.2) == pytest.approx(0.11)


def test_silence_is_counted_from_the_last_loud_packet_not_the_last_packet() -> None:
    pauses = PauseStream(0.0)
    pauses.packet(1.0, loud=True)
    pauses.packet(1.02, loud=False)
    pauses.packet(1.04, loud=False)
    assert pauses.silent_for(1.1) == pytest.approx(0.1)
