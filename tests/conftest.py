"""Fixtures shared by the whole suite: the loopback fakes, the assembled bot, the secrets check."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.discord import FakeDiscord
from tests.fakes.tls import TestCertificates
from tests.fakes.voice import FakeVoiceServer

pytest_plugins = [
    "pytester",
    "tests.fakes.discord.fixtures",
    "tests.fakes.mistral.fixtures",
    "tests.secrets_check",
    "tests.services",
]


@pytest.fixture
async def fake_voice(fake_discord: FakeDiscord, tls_certificates: TestCertificates) -> AsyncIterator[FakeVoiceServer]:
    """The voice side of the fake Discord (voice gateway, UDP, a real DAVE group per channel)."""
    async with FakeVoiceServer(tls_certificates) as server:
        fake_discord.attach_voice_server(server)
        yield server
