"""Every test runs under a secrets check: no token or key in any log record, any file it leaves,
or anything the bot sent to the fake Discord (messages, interaction replies, attached files).

For each test a handler on the root logger sees every record at DEBUG (discord.py, aiohttp,
websockets, SQLAlchemy's SQL and rows, the SDKs, the bot) and searches its raw text as it is
emitted: the rendered message, the traceback and the stack, before any formatter could mask them.
At teardown the test fails, naming the logger and a redacted excerpt, if a record carried a
secret, or if a file in the test's ``tmp_path`` does (the bot subprocesses' logs, SQLite files).

Checking the raw text is the stronger half: a record clean before formatting is clean through
``RedactingFormatter``, which only adds the logger name and level. A dirty record is also rendered
through that formatter, so the failure says whether operators would have seen the secret.

A test that logs a secret on purpose opts out with
``@pytest.mark.secrets_in_logs_expected(reason=...)``; a reason is required.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.logs import REDACTED, RedactingFormatter
from tests.fakes.discord.fixtures import running_client
from tests.fakes.mistral import FakeMistral
from tests.harness import TEST_DISCORD_TOKEN, TEST_MISTRAL_KEY

MARKER = "secrets_in_logs_expected"
SECRET_ENV_VARS = ("DISCORD_TOKEN", "MISTRAL_API_KEY")
# The fakes' default credentials are read from their signatures, so a changed default is still searched for.
SECRETS: tuple[str, ...] = (
    TEST_DISCORD_TOKEN,
    TEST_MISTRAL_KEY,
    inspect.signature(FakeMistral).parameters["api_key"].default,
    inspect.signature(running_client).parameters["token"].default,
)
# Mirrors RedactingFormatter: shorter strings would match ordinary words.
MIN_SECRET_LENGTH = 4
MAX_LEAKS_KEPT = 20
EXCERPT_CHARS = 60
# A .env is where secrets are meant to live (test_config writes one on purpose).
UNSCANNED_FILE_PREFIX = ".env"
MAX_SCANNED_FILE_BYTES = 64 * 1024 * 1024
_RENDER_FORMAT = "%(levelname)s %(name)s: %(message)s"


def secrets_now(extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The known test secrets, ``extra`` ones, and whatever DISCORD_TOKEN / MISTRAL_API_KEY hold now."""
    from_env = (os.environ.get(name, "") for name in SECRET_ENV_VARS)
    return tuple(s for s in {*SECRETS, *extra, *from_env} if len(s) >= MIN_SECRET_LENGTH)


def leaks(text: str, secrets: Iterable[str] | None = None) -> list[str]:
    return [s for s in (secrets_now() if secrets is None else secrets) if s in text]


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def excerpt(text: str, secret: str, secrets: Iterable[str]) -> str:
    """The text around the first occurrence of ``secret``, every secret in it masked."""
    at = text.index(secret)
    start, end = max(0, at - EXCERPT_CHARS), at + len(secret) + EXCERPT_CHARS
    return repr(redact(text[start:end], secrets))


def raw_text(record: logging.LogRecord) -> str:
    """What a record carries before any formatter redacts it."""
    parts = [record.getMessage()]
    if record.exc_info:
        parts.append("".join(traceback.format_exception(*record.exc_info)))
    if record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts)


@dataclass(frozen=True)
class Leak:
    where: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.where}: {self.excerpt}"


class SecretsCheck(logging.Handler):
    """Searches each record for secrets as it is emitted; keeps only the offending ones."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.extra: set[str] = set()
        self.records_seen = 0
        self.files_seen = 0
        self.replies_seen = 0
        self.leak_count = 0
        self.leaks: list[Leak] = []

    def watch(self, *secrets: str) -> None:
        """Also search for these, e.g. a wrong token a test hands the bot on purpose."""
        self.extra.update(secrets)

    def secrets(self) -> tuple[str, ...]:
        return secrets_now(self.extra)

    def emit(self, record: logging.LogRecord) -> None:
        self.records_seen += 1
        try:
            text = raw_text(record)
            secrets = self.secrets()
            found = leaks(text, secrets)
            if found:
                rendered = RedactingFormatter(_RENDER_FORMAT, secrets).format(record)
                masked = "masked by" if not leaks(rendered, secrets) else "NOT masked by"
                self.add(Leak(f"{record.levelname} {record.name} (raw record; {masked} RedactingFormatter)",
                              excerpt(text, found[0], secrets)))
        except Exception:
            self.handleError(record)

    def add(self, leak: Leak) -> None:
        self.leak_count += 1
        if len(self.leaks) < MAX_LEAKS_KEPT:
            self.leaks.append(leak)

    def scan_files(self, folder: Path) -> None:
        """Every file under ``folder`` (subprocess logs, databases) except a .env."""
        secrets = self.secrets()
        for path in sorted(folder.rglob("*")):
            if (path.name.startswith(UNSCANNED_FILE_PREFIX) or not path.is_file()
                    or path.stat().st_size > MAX_SCANNED_FILE_BYTES):
                continue
            self.files_seen += 1
            data = path.read_bytes()
            for secret in secrets:
                if secret.encode() in data:
                    text = data.decode("latin-1")  # keeps every byte, so offsets match
                    self.add(Leak(f"file {path.relative_to(folder)}", excerpt(text, secret, secrets)))
                    break

    def scan_discord(self, fake: Any) -> None:
        """Everything the bot sent to the fake Discord: channel messages, interaction answers
        (callbacks, follow-ups, edits) and the files attached to any of them."""
        secrets = self.secrets()
        pieces: list[tuple[str, bytes]] = [
            ("channel message", json.dumps(message, default=str).encode()) for message in fake.sent_messages
        ]
        for record in fake.interactions.records.values():
            for answer in record.answers:
                pieces.append((f"interaction {answer.kind}", json.dumps(answer.payload, default=str).encode()))
                pieces += [(f"file {upload.filename}", upload.data) for upload in answer.files]
        for uploads in fake.messages.uploads.values():
            pieces += [(f"file {upload.filename}", upload.data) for upload in uploads]
        for where, data in pieces:
            self.replies_seen += 1
            for secret in secrets:
                if secret.encode() in data:
                    text = data.decode("latin-1")
                    self.add(Leak(f"sent to Discord ({where})", excerpt(text, secret, secrets)))
                    break

    def report(self) -> str:
        lines = [f"{self.leak_count} secret leak(s); the first {len(self.leaks)}:"]
        lines += [f"  {leak}" for leak in self.leaks]
        return "\n".join(lines)

    def assert_clean(self) -> None:
        if self.leak_count:
            report = self.report()
            # Reported once: a later call (the fixture's teardown) reports only newer leaks.
            self.leaks.clear()
            self.leak_count = 0
            pytest.fail(report, pytrace=False)


@contextlib.contextmanager
def checking_logs(check: SecretsCheck) -> Iterator[SecretsCheck]:
    """Route every record at DEBUG through ``check``; the other handlers see what they saw before.

    pytest's own handlers (the report's "Captured log" and ``caplog``) keep the root's old threshold,
    so failure reports stay readable and DEBUG records are not formatted three more times;
    ``caplog.set_level`` still lowers caplog's handler as usual.
    """
    root = logging.getLogger()
    threshold = root.getEffectiveLevel()
    raised = [(handler, handler.level) for handler in root.handlers if handler.level < threshold]
    loggers = [root, *(logger for logger in root.manager.loggerDict.values()
                       if isinstance(logger, logging.Logger) and logger.level > logging.DEBUG)]
    lowered = [(logger, logger.level) for logger in loggers]
    for handler, _ in raised:
        handler.setLevel(threshold)
    for logger, _ in lowered:
        logger.setLevel(logging.DEBUG)
    root.addHandler(check)
    try:
        yield check
    finally:
        root.removeHandler(check)
        for logger, level in lowered:
            logger.setLevel(level)
        for handler, level in raised:
            handler.setLevel(level)


@dataclass
class Totals:
    tests: int = 0
    records: int = 0
    files: int = 0
    replies: int = 0


_TOTALS = pytest.StashKey[Totals]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_TOTALS] = Totals()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    totals = config.stash[_TOTALS]
    if totals.tests:
        terminalreporter.write_line(f"secrets check: {totals.tests} tests, {totals.records} log records at DEBUG, "
                                    f"{totals.files} files and {totals.replies} messages sent to Discord searched")


@pytest.fixture(autouse=True)
def secrets_check(request: pytest.FixtureRequest) -> Iterator[SecretsCheck]:
    """Fails the test if a secret reached a log record or a file in its tmp_path."""
    check = SecretsCheck()
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        if not (marker.kwargs.get("reason") or marker.args):
            pytest.fail(f"@pytest.mark.{MARKER} needs a reason", pytrace=False)
        yield check
        return
    # Requested before the test's other fixtures, so its files are still there at this teardown.
    tmp_path: Path | None = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    with checking_logs(check):
        yield check
    if tmp_path is not None:
        check.scan_files(tmp_path)
    fake_discord = request.node.funcargs.get("fake_discord") if hasattr(request.node, "funcargs") else None
    if fake_discord is not None:
        check.scan_discord(fake_discord)
    totals = request.config.stash[_TOTALS]
    totals.tests += 1
    totals.records += check.records_seen
    totals.files += check.files_seen
    totals.replies += check.replies_seen
    check.assert_clean()
