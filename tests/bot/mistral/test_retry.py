from __future__ import annotations

import logging
import traceback

import pytest
from mistralai.client import Mistral

from bot.mistral import (
    ChatMessage,
    ChatModel,
    MistralError,
    RateLimited,
    RequestRejected,
    RetryPolicy,
    ServiceTimeout,
    ServiceUnavailable,
    SpeechSynthesizer,
    StreamingTranscriber,
)
from bot.mistral.retry import parse_retry_after
from tests.bot.mistral.conftest import VirtualClock
from tests.fakes.mistral import FakeMistral
from tests.fakes.tls import TestCertificates

MESSAGES = [ChatMessage("user", "hello")]


async def collect_chat(client: Mistral, policy: RetryPolicy, **kwargs: float) -> list[str]:
    model = ChatModel(client, model="mistral-small-latest", retry=policy, **kwargs)
    return [delta async for delta in model.stream(MESSAGES, max_tokens=32)]


def test_full_jitter_backoff_is_bounded_by_exponential_ceiling(clock: VirtualClock) -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=3.0, random=lambda: 1.0, sleep=clock.sleep, clock=clock)
    assert [policy.delay_for(n, ServiceUnavailable("x", operation="t")) for n in range(1, 6)] == [
        0.5, 1.0, 2.0, 3.0, 3.0
    ]
    zero = RetryPolicy(random=lambda: 0.0)
    assert zero.delay_for(3, None) == 0.0


async def test_429_retry_after_is_honoured(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy, clock: VirtualClock
) -> None:
    fake.faults.fail_next("chat", status=429, retry_after=3)
    assert "".join(await collect_chat(client, policy)) == "You said: hello"
    assert clock.sleeps == [3.0]


async def test_retry_after_is_capped(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy, clock: VirtualClock
) -> None:
    fake.faults.fail_next("speech", status=429, retry_after=120)
    synthesizer = SpeechSynthesizer(client, model="voxtral-mini-tts-2603", retry=policy)
    assert [chunk async for chunk in synthesizer.synthesize("Hi.", ref_audio=None, voice_id=None)]
    assert clock.sleeps == [policy.max_retry_after]


async def test_bounded_attempts_then_clean_failure(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy, clock: VirtualClock
) -> None:
    fake.faults.fail_next("chat", 10, status=502)
    with pytest.raises(ServiceUnavailable) as caught:
        await collect_chat(client, policy)
    assert caught.value.attempts == policy.max_attempts == 4
    assert caught.value.status == 502 and caught.value.__cause__ is None
    assert len(fake.requests_to("chat")) == 4
    assert clock.sleeps == [0.25, 0.5, 1.0]


async def test_total_time_budget_stops_before_a_long_wait(
    fake: FakeMistral, client: Mistral, clock: VirtualClock
) -> None:
    policy = RetryPolicy(max_attempts=10, max_total_seconds=5.0, max_retry_after=30.0,
                         sleep=clock.sleep, random=lambda: 0.5, clock=clock)
    fake.faults.fail_next("chat", 10, status=429, retry_after=4)
    with pytest.raises(RateLimited) as caught:
        await collect_chat(client, policy)
    assert caught.value.retry_after == 4.0
    assert clock.sleeps == [4.0]  # a second 4 s wait would end past the 5 s budget
    assert len(fake.requests_to("chat")) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_client_errors_are_not_retried(
    fake: FakeMistral, client: Mistral, policy: RetryPolicy, clock: VirtualClock, status: int
) -> None:
    fake.faults.fail_next("chat", 3, status=status)
    with pytest.raises(RequestRejected) as caught:
        await collect_chat(client, policy)
    assert caught.value.status == status
    assert len(fake.requests_to("chat")) == 1 and clock.sleeps == []


async def test_408_is_retried(fake: FakeMistral, client: Mistral, policy: RetryPolicy) -> None:
    fake.faults.fail_next("chat", 1, status=408)
    assert await collect_chat(client, policy)
    assert len(fake.requests_to("chat")) == 2


async def test_connection_refused_is_retried_then_fails(clock: VirtualClock, policy: RetryPolicy,
                                                        trusted_certificates: TestCertificates) -> None:
    fake = FakeMistral(trusted_certificates)
    await fake.start()
    url = fake.url
    await fake.close()  # nothing listens on that port any more
    client = Mistral(api_key="k", server_url=url)
    with pytest.raises(ServiceUnavailable, match="connection failed"):
        await collect_chat(client, policy)
    assert len(clock.sleeps) == policy.max_attempts - 1


async def test_stall_becomes_timeout_error(fake: FakeMistral, client: Mistral, clock: VirtualClock) -> None:
    policy = RetryPolicy(max_attempts=2, sleep=clock.sleep, random=lambda: 0.5, clock=clock)
    fake.faults.stall_next("chat", 2)
    with pytest.raises(ServiceTimeout) as caught:
        await collect_chat(client, policy, first_token_timeout=0.2)
    assert caught.value.attempts == 2
    assert len(fake.requests_to("chat")) == 2


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"Retry-After": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    http_date = {"Retry-After": "Wed, 25 Nov 2026 10:00:10 GMT"}
    assert parse_retry_after(http_date, now=lambda: 1795600800.0) == 10.0
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None


async def test_api_key_never_in_errors_or_logs(
    fake: FakeMistral, policy: RetryPolicy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.echo_auth_in_errors = True  # the worst case: error bodies quote the Authorization header
    key = fake.api_key
    client = Mistral(api_key=key, server_url=fake.url)
    failures: list[BaseException] = []

    fake.faults.fail_next("chat", 10, status=503)
    fake.faults.fail_next("speech", 1, status=401)
    fake.faults.fail_next("realtime", 1, status=503)
    fake.faults.fail_next("transcriptions", 10, status=500)
    for attempt in (
        collect_chat(client, policy),
        _drain(SpeechSynthesizer(client, model="tts", retry=policy).synthesize("Hi.", ref_audio=None,
                                                                              voice_id=None)),
        StreamingTranscriber(client, realtime_model="rt", batch_model="b", retry=policy).transcribe(_audio()),
    ):
        with pytest.raises(MistralError) as caught:
            await attempt
        failures.append(caught.value)

    wrong = Mistral(api_key="wrong-secret-key-42", server_url=fake.url)
    with pytest.raises(RequestRejected) as caught:
        await collect_chat(wrong, policy)
    failures.append(caught.value)

    assert len(caplog.records) > 0
    texts = ["".join(traceback.format_exception(error)) + repr(error) for error in failures]
    texts += [record.getMessage() for record in caplog.records]
    texts += ["".join(traceback.format_exception(*r.exc_info)) for r in caplog.records if r.exc_info]
    for text in texts:
        assert key not in text
        assert "wrong-secret-key-42" not in text


async def _drain(stream) -> None:  # type: ignore[no-untyped-def]
    async for _ in stream:
        pass


async def _audio():  # type: ignore[no-untyped-def]
    yield b"\x01\x00" * 1600
