from __future__ import annotations

import pytest
from mistralai.client import Mistral

from bot.mistral import RetryPolicy
from tests.fakes.mistral import FakeMistral


class VirtualClock:
    """A monotonic clock that only moves when the code under test sleeps through it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
async def fake(fake_mistral: FakeMistral) -> FakeMistral:
    """The suite's ``fake_mistral``: HTTPS/WSS, its CA trusted through ``SSL_CERT_FILE``."""
    return fake_mistral


@pytest.fixture
def client(fake: FakeMistral) -> Mistral:
    # Built here the way bot/__main__ builds it; the services only ever receive it.
    return Mistral(api_key=fake.api_key, server_url=fake.url)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def policy(clock: VirtualClock) -> RetryPolicy:
    # random() == 0.5 makes full jitter land on half the exponential ceiling: 0.25, 0.5, 1.0, ...
    return RetryPolicy(max_attempts=4, max_total_seconds=30.0, base_delay=0.5, max_delay=8.0,
                       max_retry_after=10.0, sleep=clock.sleep, random=lambda: 0.5, clock=clock)
