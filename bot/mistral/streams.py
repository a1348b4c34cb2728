"""One shape for every streamed Mistral response: open under retry, wait for the first item, then
read with an idle timeout.

Chat (text deltas) and speech (audio chunks) differ only in how an SDK event becomes an item.
Failures before the first item are retried by the policy, because nothing has reached the user
yet; after it they raise, because words already spoken cannot be taken back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Protocol, TypeVar

from .retry import RetryPolicy, classify

E = TypeVar("E")
E_co = TypeVar("E_co", covariant=True)
T = TypeVar("T")


class EventStream(Protocol[E_co]):
    """What the SDK's ``EventStreamAsync`` offers and the loop below uses."""

    def __anext__(self) -> Awaitable[E_co]: ...

    async def close(self) -> None: ...


async def stream_items(
    operation: str,
    retry: RetryPolicy,
    open_stream: Callable[[], Awaitable[EventStream[E]]],
    item_of: Callable[[E], T | None],
    *,
    first_item_timeout: float,
    idle_timeout: float,
) -> AsyncGenerator[T, None]:
    """Items of one streamed response, in order.

    ``open_stream`` makes one attempt (it is called again on retry, so it resets any per-attempt
    state); ``item_of`` turns an event into an item, or ``None``/empty for events that carry none.
    Opening and reading up to the first item must finish within ``first_item_timeout``; later
    events must each arrive within ``idle_timeout``. Raises ``MistralError`` subclasses.
    """

    async def first_item() -> tuple[EventStream[E], T | None]:
        async with asyncio.timeout(first_item_timeout):
            events = await open_stream()
            try:
                while True:
                    try:
                        event = await anext(events)
                    except StopAsyncIteration:
                        return events, None
                    item = item_of(event)
                    if item:
                        return events, item
            except BaseException:
                await events.close()
                raise

    events, first = await retry.run(operation, first_item)
    try:
        if first:
            yield first
        while True:
            try:
                async with asyncio.timeout(idle_timeout):
                    event = await anext(events)
            except StopAsyncIteration:
                return
            except Exception as exc:
                error = classify(exc, operation)
                if error is None:
                    raise
                raise error from None
            item = item_of(event)
            if item:
                yield item
    finally:
        await events.close()
