"""Helpers every fake endpoint shares: API-shaped refusals and request-body decoding."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import pydantic
from aiohttp import web

from .state import Fault

FAULT_KEY = web.RequestKey("fault", Fault)
"""The fault, if any, this request was picked to suffer (for handlers that act mid-response)."""


class RequestRejected(Exception):
    """Raised by handlers to answer an error response; carries the JSON body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def validation_failure(error: pydantic.ValidationError | str) -> RequestRejected:
    """A 422 shaped like the API's (and what the SDK's ``HTTPValidationErrorData`` parses)."""
    if isinstance(error, str):
        detail = [{"loc": ["body"], "msg": error, "type": "value_error"}]
    else:
        # Only the JSON-safe parts: ``input`` may be megabytes of base64 and ``ctx`` holds exceptions.
        detail = [
            {"loc": ["body", *error_item["loc"]], "msg": error_item["msg"], "type": error_item["type"]}
            for error_item in error.errors()
        ]
    return RequestRejected(422, {"object": "error", "detail": detail})


def decode_base64(value: str, field: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise validation_failure(f"{field} is not valid base64") from None


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(chunk.get("text", "")) for chunk in content if isinstance(chunk, dict))
    return ""
