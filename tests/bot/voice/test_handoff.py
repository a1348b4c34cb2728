"""The reader-thread → event-loop hand-off on its own."""

from __future__ import annotations

import asyncio
import logging
import threading

from bot.voice.handoff import Handoff
from bot.voice.stats import RateLimitedLog


class Sink:
    def __init__(self, fail_on: int | None = None) -> None:
        self.got: list[tuple[int, bytes | None, int]] = []
        self.fail_on = fail_on

    def on_speaker_frame(self, user_id: int, pcm16k: bytes, rtp_timestamp: int) -> None:
        if user_id == self.fail_on:
            raise RuntimeError("consumer bug")
        self.got.append((user_id, pcm16k, rtp_timestamp))

    def on_speaker_gone(self, user_id: int) -> None:
        self.got.append((user_id, None, 0))


def handoff(sink: Sink) -> Handoff:
    h = Handoff(batch_interval=0.0, log=RateLimitedLog(logging.getLogger(__name__)))
    h.sink, h.loop = sink, asyncio.get_running_loop()
    return h


async def test_chunks_posted_from_a_thread_arrive_in_order_in_one_delivery() -> None:
    sink = Sink()
    h = handoff(sink)
    wakeups = 0
    deliver = h.deliver

    def counting() -> None:
        nonlocal wakeups
        wakeups += 1
        deliver()

    h.deliver = counting  # type: ignore[method-assign]  # count the loop-side deliveries
    thread = threading.Thread(target=lambda: [h.post(7, bytes([i]), i) for i in range(50)] and h.post(7, None, 0))
    thread.start()
    thread.join()
    assert h.pending == 51
    await asyncio.sleep(0)
    assert h.pending == 0 and wakeups == 1
    assert sink.got == [(7, bytes([i]), i) for i in range(50)] + [(7, None, 0)]


async def test_a_sink_that_raises_loses_only_its_own_chunk() -> None:
    sink = Sink(fail_on=8)
    h = handoff(sink)
    h.post(8, b"a", 5)
    h.post(9, b"b", 0x1_0000_0001)  # RTP timestamps wrap at 32 bits
    await asyncio.sleep(0)
    assert sink.got == [(9, b"b", 1)]


async def test_a_closed_loop_is_reported_not_raised() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    h = Handoff(batch_interval=0.0, log=RateLimitedLog(logging.getLogger(__name__)))
    h.sink, h.loop = Sink(), loop
    assert h.post(1, b"x", 0) is False
