"""The SDK's per-call wrapper models are built once per type, and behave exactly as before."""

from __future__ import annotations

import pydantic
import pytest
from mistralai.client import models, utils
from mistralai.client.types import UNSET, OptionalNullable
from mistralai.client.utils import serializers

from bot.mistral.sdk_speedups import _cached_create_model, cached_model_count, install_model_cache


@pytest.fixture
def original_serializers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start from the SDK as shipped; monkeypatch puts back whatever was installed."""
    monkeypatch.setattr(serializers, "create_model", pydantic.create_model)


MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
MESSAGE_LIST = list[models.ChatCompletionStreamRequestMessage]


@pytest.mark.usefixtures("original_serializers")
def test_installed_results_equal_the_sdks_own() -> None:
    before = utils.get_pydantic_model(MESSAGES, MESSAGE_LIST)
    stop_before = utils.unmarshal(UNSET, OptionalNullable[models.ChatCompletionStreamRequestStop])
    assert install_model_cache()
    after = utils.get_pydantic_model(MESSAGES, MESSAGE_LIST)
    assert after == before and [type(m) for m in after] == [models.SystemMessage, models.UserMessage]
    assert utils.unmarshal(UNSET, OptionalNullable[models.ChatCompletionStreamRequestStop]) == stop_before
    request = models.SpeechRequest(input="Hello", model="voxtral-mini-tts-2603")
    assert utils.marshal_json(request, models.SpeechRequest) == request.model_dump_json(by_alias=True,
                                                                                        exclude_none=True)


@pytest.mark.usefixtures("original_serializers")
def test_each_wrapper_class_is_built_once() -> None:
    install_model_cache()
    utils.get_pydantic_model(MESSAGES, MESSAGE_LIST)
    count = cached_model_count()
    for _ in range(5):
        utils.get_pydantic_model(MESSAGES, MESSAGE_LIST)
        utils.unmarshal(None, OptionalNullable[models.ChatCompletionStreamRequestStop])
    assert cached_model_count() <= count + 1  # the second type, once


@pytest.mark.usefixtures("original_serializers")
def test_install_is_idempotent_and_leaves_a_changed_sdk_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    assert install_model_cache() and install_model_cache()
    assert serializers.create_model is _cached_create_model
    replaced = object()
    monkeypatch.setattr(serializers, "create_model", replaced)
    assert install_model_cache() is False
    assert serializers.create_model is replaced


def test_unhashable_or_unusual_calls_fall_through_to_pydantic() -> None:
    first = _cached_create_model("Other", x=(int, ...))
    second = _cached_create_model("Other", x=(int, ...))
    assert first is not second  # not the SDK's shape: never cached
    assert first(x=1).x == 1
