"""Pytest fixtures for the fake Mistral; enable with ``pytest_plugins = ["tests.fakes.mistral.fixtures"]``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from mistralai.client import Mistral

from .server import FakeMistral


@pytest.fixture
async def fake_mistral() -> AsyncIterator[FakeMistral]:
    async with FakeMistral() as server:
        yield server


@pytest.fixture
def mistral_client(fake_mistral: FakeMistral) -> Mistral:
    """The real SDK pointed at the fake, built the way the entry point builds it."""
    return Mistral(api_key=fake_mistral.api_key, server_url=fake_mistral.url)
