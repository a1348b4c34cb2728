"""The shared open-under-retry / first-item / idle-timeout loop, on scripted event streams."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest

from bot.mistral import RetryPolicy, ServiceTimeout, ServiceUnavailable
from bot.mistral.streams import stream_items


class Scripted:
    """An event stream that yields its events, sleeping ``gap`` seconds before each."""

    def __init__(self, events: list[str | Exception], gap: float = 0.0) -> None:
        self._events = list(events)
        self._gap = gap
        self.closed = False

    def __anext__(self) -> Awaitable[str]:
        return self._next()

    async def _next(self) -> str:
        await asyncio.sleep(self._gap)
        if not self._events:
            raise StopAsyncIteration
        event = self._events.pop(0)
        if isinstance(event, Exception):
            raise event
        return event

    async def close(self) -> None:
        self.closed = True


async def test_empty_events_are_skipped_and_every_stream_is_closed(policy: RetryPolicy) -> None:
    attempts: list[Scripted] = [Scripted([ConnectionResetError()]), Scripted(["", "a", "", "b"])]
    opened: list[Scripted] = []

    async def open_stream() -> Scripted:
        stream = attempts.pop(0)
        opened.append(stream)
        return stream

    items = [item async for item in stream_items("speech", policy, open_stream, lambda e: e,
                                                 first_item_timeout=1.0, idle_timeout=1.0)]
    assert items == ["a", "b"]
    assert [stream.closed for stream in opened] == [True, True]


async def test_a_failure_after_the_first_item_is_raised_not_retried(policy: RetryPolicy) -> None:
    calls = 0

    async def open_stream() -> Scripted:
        nonlocal calls
        calls += 1
        return Scripted(["a", ConnectionResetError()])

    items: list[str] = []
    with pytest.raises(ServiceUnavailable):
        async for item in stream_items("chat", policy, open_stream, lambda e: e,
                                       first_item_timeout=1.0, idle_timeout=1.0):
            items.append(item)
    assert (items, calls) == (["a"], 1)


async def test_a_stalled_stream_times_out_on_the_idle_timeout(policy: RetryPolicy) -> None:
    async def open_stream() -> Scripted:
        return Scripted(["a", "b"], gap=0.05)

    chunks = stream_items("chat", policy, open_stream, lambda e: e, first_item_timeout=30.0, idle_timeout=0.01)
    assert await anext(chunks) == "a"  # the first item has its own, longer budget
    with pytest.raises(ServiceTimeout):
        await anext(chunks)
