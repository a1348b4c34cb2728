"""Fixtures shared by the whole suite: the loopback fakes and the assembled bot."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.discord import FakeDiscord
from tests.fakes.tls import TestCertificates
from tests.fakes.voice import FakeVoiceServer

pytest_plugins = ["tests.fakes.discord.fixtures", "tests.fakes.mistral.fixtures", "tests.services"]


@pytest.fixture
async def fake_voice(fake_discord: FakeDiscord, tls_certificates: TestCertificates) -> AsyncIterator[FakeVoiceServer]:
    """The voice side of the fake Discord (voice gateway, UDP, a real DAVE group per channel)."""
    async with FakeVoiceServer(tls_certificates) as server:
        fake_discord.attach_voice_server(server)
        yield server
