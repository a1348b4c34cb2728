"""The SDK's first-call work is done by ``warm_sdk`` at start, in-process, not by the first reply."""

from __future__ import annotations

import httpx2
import pydantic
import pytest
from mistralai.client import Mistral
from mistralai.client.utils import forms, queryparams, serializers, url

from bot.mistral import ChatMessage, ChatModel, RetryPolicy, SpeechSynthesizer, sdk_preload, sdk_speedups
from bot.mistral.sdk_preload import warm_sdk
from tests.fakes.mistral import FakeMistral

CHAT, TTS = "mistral-small-latest", "voxtral-mini-tts-3-0"


@pytest.fixture
def cold_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The speed-ups installed with empty caches, as in a process that just started."""
    monkeypatch.setattr(serializers, "create_model", pydantic.create_model)
    for module in (queryparams, url, forms):
        monkeypatch.setattr(module, "get_type_hints", sdk_speedups.typing.get_type_hints)
    monkeypatch.setattr(sdk_speedups, "_cache", {})
    monkeypatch.setattr(sdk_speedups, "_type_hints", {})
    assert sdk_speedups.install_model_cache() and sdk_speedups.install_type_hint_cache()


def built() -> tuple[int, int]:
    """Wrapper models and request type hints built so far (each once per type, on first use)."""
    return len(sdk_speedups._cache), len(sdk_speedups._type_hints)


async def reply(fake: FakeMistral) -> None:
    client = Mistral(api_key=fake.api_key, server_url=fake.url)
    retry = RetryPolicy(max_attempts=1, max_total_seconds=5.0)
    chat = ChatModel(client, model=CHAT, retry=retry)
    text = "".join([d async for d in chat.stream([ChatMessage(role="user", content="Hi")], max_tokens=20)])
    speech = SpeechSynthesizer(client, model=TTS, retry=retry).synthesize(text, ref_audio=None, voice_id=None)
    assert [frame async for frame in speech]


@pytest.mark.usefixtures("cold_caches")
async def test_after_the_warm_up_a_reply_builds_nothing_the_first_time(fake: FakeMistral) -> None:
    fake.latency.chat_first_token = fake.latency.tts_first_audio = 0.0
    assert await warm_sdk(chat_model=CHAT, tts_model=TTS)
    warm = built()
    assert warm[0] > 0 and warm[1] > 0
    await reply(fake)
    assert built() == warm
    assert len(fake.requests) == 2  # the reply's: the warm-up never left the process


@pytest.mark.usefixtures("cold_caches")
async def test_without_it_the_first_reply_builds_them(fake: FakeMistral) -> None:
    # The control: the count above sees first-call work when the reply does it.
    fake.latency.chat_first_token = fake.latency.tts_first_audio = 0.0
    await reply(fake)
    assert built()[0] > 0 and built()[1] > 0


async def test_a_changed_sdk_makes_it_a_logged_no_op(monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    def unexpected(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=b'data: {"x": 1}\n\n')

    monkeypatch.setattr(sdk_preload, "_answer", unexpected)
    assert await warm_sdk(chat_model=CHAT, tts_model=TTS) is False
    assert "warm-up failed" in caplog.text
