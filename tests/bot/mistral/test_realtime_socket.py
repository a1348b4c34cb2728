"""The realtime transcription socket: opened uncompressed, over TLS with the bot's own context."""

from __future__ import annotations

import ssl

import pytest
from mistralai.client import Mistral
from mistralai.extra.realtime import transcription as realtime_transcription

from bot.mistral import realtime_socket
from bot.mistral.realtime_socket import _SDK_WS_CONNECT as SDK_WS_CONNECT
from bot.mistral.realtime_socket import install_realtime_socket_options
from bot.mistral.redaction import install_log_redaction
from tests.fakes.mistral import FakeMistral, RealtimeSession

MODEL = "voxtral-mini-transcribe-realtime-2602"


@pytest.fixture(autouse=True)
def sdk_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from the SDK as shipped, whatever an earlier test installed."""
    monkeypatch.setattr(realtime_transcription, "connect", SDK_WS_CONNECT)
    monkeypatch.setattr(realtime_socket, "_tls_contexts", {})  # nor a context an earlier test gave
    install_log_redaction()  # as the transcriber does: the handshake's DEBUG log carries the key


async def _session(client: Mistral, fake: FakeMistral, index: int) -> tuple[RealtimeSession, ssl.SSLContext]:
    connection = await client.audio.realtime.connect(MODEL)
    try:
        session = await fake.wait_for_realtime_session(index)
        await connection.send_audio(bytes(3200))
        await session.wait_for_appends(1)
        context = connection._websocket.transport.get_extra_info("ssl_object").context
    finally:
        await connection.close()
    return session, context


async def test_the_realtime_socket_is_opened_without_permessage_deflate(fake_mistral: FakeMistral) -> None:
    client = Mistral(api_key=fake_mistral.api_key, server_url=fake_mistral.url)
    shipped, _ = await _session(client, fake_mistral, 0)
    assert shipped.compressed  # the SDK as shipped offers it, and the fake accepts
    tls = ssl.create_default_context()
    assert install_realtime_socket_options(tls) and install_realtime_socket_options(tls)
    ours, _ = await _session(client, fake_mistral, 1)
    assert not ours.compressed


async def test_every_realtime_socket_uses_the_context_it_was_given(fake_mistral: FakeMistral) -> None:
    # websockets builds a context per wss:// connection, parsing the whole trust store each time
    # (~55 ms of CPU on the loop against the system roots): once per turn. And a context of the
    # socket's own would be a second parsed copy of the store beside the bot's (~0.7 MB).
    client = Mistral(api_key=fake_mistral.api_key, server_url=fake_mistral.url)
    _, first = await _session(client, fake_mistral, 0)
    _, second = await _session(client, fake_mistral, 1)
    assert first is not second  # the SDK as shipped
    bots = ssl.create_default_context()  # as bot/__main__.py's make_tls_context, under SSL_CERT_FILE
    assert install_realtime_socket_options(bots)
    _, third = await _session(client, fake_mistral, 2)
    _, fourth = await _session(client, fake_mistral, 3)
    assert third is bots and fourth is bots
    assert third.verify_mode == ssl.CERT_REQUIRED and third.check_hostname


async def test_a_changed_trust_setting_gets_its_own_context(fake_mistral: FakeMistral,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # Only tests change SSL_CERT_FILE while running (each fake has a CA of its own); a context
    # given for one setting must not be used to verify a server under another.
    bots = ssl.create_default_context()
    assert install_realtime_socket_options(bots)
    client = Mistral(api_key=fake_mistral.api_key, server_url=fake_mistral.url)
    _, first = await _session(client, fake_mistral, 0)
    async with FakeMistral() as other:  # a CA of its own
        monkeypatch.setenv("SSL_CERT_FILE", str(other.certificates.ca_file))
        other_client = Mistral(api_key=other.api_key, server_url=other.url)
        _, second = await _session(other_client, other, 0)
        _, third = await _session(other_client, other, 1)
    assert first is bots and second is not bots and second is third


def test_a_changed_sdk_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(realtime_transcription, "connect", lambda *args, **kwargs: None)
    assert install_realtime_socket_options(ssl.create_default_context()) is False
