"""Make the ``mistralai`` SDK stop building a pydantic model class on every request.

The SDK's (Speakeasy-generated) ``utils.serializers.unmarshal`` and ``marshal_json`` wrap the
value in a model made with ``pydantic.create_model("Unmarshaller", body=(typ, ...))`` on every
call. Building a model class costs ~1 ms, and a chat request makes about eight such calls (one
per optional argument, even when it is unset) before a byte leaves, a TTS request several: all
on the event loop, between the transcript and the request going out (measured with cProfile
against the fake Mistral; see docs/benchmarks.md). The class depends only on its name and
``typ``, so this caches it; the values still go through exactly the SDK's own code.

Installed once by the entry point. It replaces the ``create_model`` name the serializers module
looks up at call time, and nothing else; if a future SDK changes that shape, it is left alone.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pydantic
from mistralai.client.utils import serializers

log = logging.getLogger(__name__)

_lock = threading.Lock()
_cache: dict[tuple[str, Any, tuple[tuple[str, Any], ...]], type[pydantic.BaseModel]] = {}


def _cached_create_model(model_name: str, /, **kwargs: Any) -> type[pydantic.BaseModel]:
    body = kwargs.get("body")
    config = kwargs.get("__config__")
    if set(kwargs) - {"body", "__config__"} or not isinstance(body, tuple) or len(body) != 2:
        return pydantic.create_model(model_name, **kwargs)
    try:
        key = (model_name, body[0], tuple(sorted((config or {}).items())))
        hash(key)
    except TypeError:  # an unhashable annotation: build it the SDK's way
        return pydantic.create_model(model_name, **kwargs)
    model = _cache.get(key)
    if model is None:
        with _lock:  # the SDK also runs in worker threads (sync calls); build each class once
            model = _cache.get(key)
            if model is None:
                model = _cache[key] = pydantic.create_model(model_name, **kwargs)
    return model


def install_model_cache() -> bool:
    """Cache the SDK's per-call wrapper models. Idempotent; False if the SDK's shape changed."""
    current = getattr(serializers, "create_model", None)
    if current is _cached_create_model:
        return True
    if current is not pydantic.create_model:
        log.debug("mistralai serializers changed shape; not caching their wrapper models")
        return False
    serializers.create_model = _cached_create_model  # type: ignore[attr-defined]
    return True


def cached_model_count() -> int:
    return len(_cache)
