"""The SDK's ``UNSET`` default shared, not deep-copied each time a model is built.

pydantic deep-copies a field's default whenever it validates data without that field, unless the
default is an immutable builtin. Each optional field of the SDK's models defaults to ``UNSET``, an
instance of the field-less pydantic model ``Unset``: a streamed chat chunk (``CompletionChunk``,
its choice and its delta) leaves seven such fields out, and their seven ``copy.deepcopy`` calls
through ``BaseModel.__deepcopy__`` were 13 of the 21 µs the SDK's decoder took per chunk (timed
with cProfile and timeit on the loop's chat events). ``Unset`` has no fields and refuses new
attributes, so a copy can never differ from the original: it now copies to itself (and a field
left out now holds ``UNSET`` itself, so ``is UNSET``, the SDK's usual test, is true of it too).
"""

from __future__ import annotations

import logging
from typing import Any

from mistralai.client.types import basemodel

log = logging.getLogger(__name__)


def _itself(self: Any, memo: dict[int, Any] | None = None) -> Any:
    return self


def install_shared_unset() -> bool:
    """Copy ``Unset`` instances by reference. Idempotent; False (left alone) if ``Unset`` changed
    shape (fields of its own, mutable, or a copy of its own)."""
    unset: Any = getattr(basemodel, "Unset", None)
    if unset is None:
        return False
    own = vars(unset).get("__deepcopy__")
    if own is _itself:
        return True
    if own is not None or unset.model_fields or unset.model_config.get("extra") == "allow":
        log.debug("mistralai Unset changed shape; its instances are copied as pydantic copies them")
        return False
    unset.__deepcopy__ = _itself
    return True
