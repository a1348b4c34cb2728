from __future__ import annotations

import pytest
from mistralai.client import Mistral

from bot.mistral import ChatMessage, ChatModel, RetryPolicy, ServiceUnavailable
from tests.bot.mistral.conftest import VirtualClock
from tests.fakes.mistral import FakeMistral

MESSAGES = [ChatMessage("system", "Be brief."), ChatMessage("user", "What is a fjord?")]


def chat(client: Mistral, policy: RetryPolicy, **kwargs: float) -> ChatModel:
    return ChatModel(client, model="mistral-small-latest", retry=policy, **kwargs)


async def test_streams_deltas_then_exposes_usage(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy
) -> None:
    fake.reply = lambda messages: "A long, narrow sea inlet."
    stream = chat(client, policy).stream(MESSAGES, max_tokens=64)
    assert stream.usage is None
    deltas = [delta async for delta in stream]
    assert deltas == ["A", " long,", " narrow", " sea", " inlet."]
    assert stream.usage is not None
    assert (stream.usage.input_tokens, stream.usage.output_tokens) == (8, 5)
    assert stream.finish_reason == "stop"
    (request,) = fake.requests_to("chat")
    assert request.body["messages"] == [{"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": "What is a fjord?"}]
    assert request.body["max_tokens"] == 64 and request.body["model"] == "mistral-small-latest"
    assert "temperature" not in request.body


async def test_retries_503_before_first_token(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy, clock: VirtualClock
) -> None:
    fake.faults.fail_next("chat", 2, status=503)
    deltas = [delta async for delta in chat(client, policy).stream(MESSAGES, max_tokens=64)]
    assert "".join(deltas) == "You said: What is a fjord?"
    assert [r.status for r in fake.requests_to("chat")] == [503, 503, 200]
    assert clock.sleeps == [0.25, 0.5]


async def test_cut_before_first_token_is_retried(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy
) -> None:
    fake.faults.break_stream_next("chat", after_events=1)  # only the role chunk gets through
    deltas = [delta async for delta in chat(client, policy).stream(MESSAGES, max_tokens=64)]
    assert "".join(deltas) == "You said: What is a fjord?"
    assert len(fake.requests_to("chat")) == 2


async def test_cut_after_first_token_is_not_retried(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy
) -> None:
    fake.faults.break_stream_next("chat", after_events=3)
    received: list[str] = []
    with pytest.raises(ServiceUnavailable):
        async for delta in chat(client, policy).stream(MESSAGES, max_tokens=64):
            received.append(delta)
    assert received == ["You", " said:"]
    assert len(fake.requests_to("chat")) == 1


async def test_max_tokens_validated_and_sent(fake: FakeMistral, client: Mistral, policy: RetryPolicy) -> None:
    with pytest.raises(ValueError):
        chat(client, policy).stream(MESSAGES, max_tokens=0)
    stream = chat(client, policy).stream(MESSAGES, max_tokens=2)
    assert [delta async for delta in stream] == ["You", " said:"]
    assert stream.finish_reason == "length"


async def test_aclose_releases_the_stream(fake: FakeMistral, client: Mistral, policy: RetryPolicy) -> None:
    stream = chat(client, policy).stream(MESSAGES, max_tokens=64)
    assert await anext(stream) == "You"
    await stream.aclose()
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


async def test_on_open_runs_once_the_request_is_out_and_before_the_first_token(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy
) -> None:
    # The reply's FFmpeg is spawned from it: after the request (never delaying it), before text.
    fake.faults.fail_next("chat", 1, status=503)  # a failed attempt has no response to open
    seen: list[tuple[int, list[str]]] = []
    deltas: list[str] = []

    def opened() -> None:
        seen.append((len(fake.requests_to("chat")), list(deltas)))

    stream = chat(client, policy).stream(MESSAGES, max_tokens=64, on_open=opened)
    deltas.extend([delta async for delta in stream])
    assert seen == [(2, [])]
