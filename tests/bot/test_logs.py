from __future__ import annotations

import logging

from bot.logs import REDACTED, RedactingFormatter


def make_record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord("t", logging.ERROR, __file__, 1, message, args, exc_info)


def test_secret_in_message_arguments_is_redacted() -> None:
    formatter = RedactingFormatter("%(message)s", ["sekrit-token-1"])
    out = formatter.format(make_record("token=%s", "sekrit-token-1"))
    assert "sekrit-token-1" not in out
    assert REDACTED in out


def test_secret_in_traceback_is_redacted() -> None:
    formatter = RedactingFormatter("%(message)s", ["key-XYZ-987"])
    try:
        raise RuntimeError("auth failed for key-XYZ-987")
    except RuntimeError as error:
        out = formatter.format(make_record("boom", exc=error))
    assert "key-XYZ-987" not in out
    assert "RuntimeError" in out


def test_short_strings_are_not_treated_as_secrets() -> None:
    # An empty or tiny secret would otherwise blank out ordinary words.
    formatter = RedactingFormatter("%(message)s", ["", "ab"])
    assert formatter.format(make_record("about abc")) == "about abc"
