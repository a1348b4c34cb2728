"""The SDK's UNSET default is shared by the models built from a stream, not deep-copied per field."""

from __future__ import annotations

import copy
import cProfile
import pstats
from collections.abc import Iterator

import pydantic
import pytest
from mistralai.client import models
from mistralai.client.types import UNSET, basemodel
from mistralai.client.utils import serializers

from bot.mistral.sdk_unset import install_shared_unset

CHUNK = {"data": {"id": "c1", "model": "m", "object": "chat.completion.chunk", "created": 1,
                  "choices": [{"index": 0, "delta": {"content": " word"}, "finish_reason": None}]}}


@pytest.fixture
def as_shipped() -> Iterator[None]:
    """The SDK's Unset without the fix, and after the test as it was before (installed or not)."""
    unset = basemodel.Unset
    before = vars(unset).get("__deepcopy__")
    if before is not None:
        delattr(unset, "__deepcopy__")
    yield
    if "__deepcopy__" in vars(unset):
        delattr(unset, "__deepcopy__")
    if before is not None:
        unset.__deepcopy__ = before  # type: ignore[method-assign]  # restoring the SDK class


def _decode() -> models.CompletionEvent:
    event = serializers.unmarshal(CHUNK, models.CompletionEvent)
    assert isinstance(event, models.CompletionEvent)
    return event


@pytest.mark.usefixtures("as_shipped")
def test_a_streamed_chat_chunk_holds_unset_itself_and_copies_nothing() -> None:
    shipped = _decode()
    assert install_shared_unset() and install_shared_unset()
    profile = cProfile.Profile()
    profile.enable()
    event = _decode()
    profile.disable()
    assert event == shipped  # the same values
    delta = event.data.choices[0].delta
    assert delta.tool_calls is UNSET and delta.role is UNSET
    assert copy.deepcopy(UNSET) is UNSET
    copied = sum(count for (_, _, name), (count, *_) in pstats.Stats(profile).stats.items()  # type: ignore[attr-defined]  # pstats keeps its table untyped
                 if name == "__deepcopy__")
    assert copied == 0  # seven (one per field left out) as shipped


@pytest.mark.usefixtures("as_shipped")
def test_an_unset_that_could_hold_values_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    class Holding(basemodel.BaseModel):
        model_config = pydantic.ConfigDict(extra="allow")

    monkeypatch.setattr(basemodel, "Unset", Holding)
    assert install_shared_unset() is False
    assert "__deepcopy__" not in vars(Holding)
