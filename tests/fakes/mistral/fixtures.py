"""Pytest fixtures for the fake Mistral; enable with ``pytest_plugins = ["tests.fakes.mistral.fixtures"]``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from mistralai.client import Mistral

from tests.fakes.tls import TestCertificates

from .server import FakeMistral


@pytest.fixture
def trusted_certificates(tls_certificates: TestCertificates, monkeypatch: pytest.MonkeyPatch) -> TestCertificates:
    """The fake Discord's test CA, trusted through ``SSL_CERT_FILE`` as an operator behind a
    corporate CA would: read by the SDK's own HTTP client and by ``websockets`` (realtime), and
    by the bot's TLS context. Hand it to ``FakeMistral(...)`` built in a test."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_certificates.ca_file))
    return tls_certificates


@pytest.fixture
async def fake_mistral(trusted_certificates: TestCertificates) -> AsyncIterator[FakeMistral]:
    """Serves HTTPS/WSS only, as api.mistral.ai does, with a certificate from the trusted CA."""
    async with FakeMistral(trusted_certificates) as server:
        yield server


@pytest.fixture
def mistral_client(fake_mistral: FakeMistral) -> Mistral:
    """The real SDK pointed at the fake, built the way the entry point builds it."""
    return Mistral(api_key=fake_mistral.api_key, server_url=fake_mistral.url)


class RecordingSleep:
    """Stands in for ``FakeMistral.sleep``: records each delay the fake asked for, waits none."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
