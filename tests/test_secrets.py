"""The Discord token and the Mistral key never leak: not in logs, the database, or exceptions.

Representative flows run with every logger at DEBUG: a settings error, a refused login, a good
login, slash commands, a spoken turn through both fakes, and Mistral 401 and 500 failures
(through the production chat client against the fake). Logs
are checked twice: rendered by the project's RedactingFormatter (what operators see) and raw
(each record's getMessage() and traceback), which must be clean without the formatter's help.
"""

from __future__ import annotations

import io
import logging
import traceback
from collections.abc import Iterator
from pathlib import Path

import discord
import pytest
from mistralai.client import Mistral
from pydantic import ValidationError

from bot.config import Settings, describe_settings_error
from bot.logs import RedactingFormatter
from bot.mistral import ChatMessage, ChatModel, MistralError, RetryPolicy
from bot.mistral.redaction import install_log_redaction
from tests.e2e.conversation_support import call_in_progress, spoken_question, wait_turns
from tests.fakes.mistral import FakeMistral
from tests.harness import TEST_DISCORD_TOKEN, TEST_MISTRAL_KEY, build_world, running_bot, settings_for

SECRETS = (TEST_DISCORD_TOKEN, TEST_MISTRAL_KEY)


def leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


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


def database_bytes(folder: Path) -> str:
    """The SQLite file and any WAL / journal next to it, as text that keeps every byte."""
    return "".join(path.read_bytes().decode("latin-1") for path in sorted(folder.glob("voxcord.db*")))


def exception_text(error: BaseException) -> str:
    return "\n".join([repr(error), str(error), "".join(traceback.format_exception(error))])


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[tuple[pytest.LogCaptureFixture, io.StringIO]]:
    """Everything at DEBUG, captured raw (caplog) and through the production formatter."""
    install_log_redaction()
    rendered = io.StringIO()
    handler = logging.StreamHandler(rendered)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s", SECRETS))
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    noisy = [logging.getLogger(name) for name in ("discord", "websockets", "httpx", "httpcore", "aiohttp",
                                                   "sqlalchemy", "mistralai", "bot", "cogs")]
    saved = [(logger, logger.level) for logger in (root, *noisy)]
    root.addHandler(handler)
    for logger, _ in saved:
        logger.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    try:
        yield caplog, rendered
    finally:
        root.removeHandler(handler)
        for logger, level in saved:
            logger.setLevel(level)


def assert_clean_logs(caplog: pytest.LogCaptureFixture, rendered: io.StringIO) -> None:
    assert caplog.records, "the flows logged nothing: the capture is not working"
    dirty = [(r.name, leaks(raw_text(r))) for r in caplog.records if leaks(raw_text(r))]
    assert not dirty, f"raw log records carry a secret: {dirty[:5]}"
    assert not leaks(rendered.getvalue())
    assert not leaks(caplog.text)


def test_settings_errors_never_echo_a_secret(debug_logs) -> None:
    caplog, rendered = debug_logs
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None, discord_token=TEST_DISCORD_TOKEN, mistral_api_key=TEST_MISTRAL_KEY,
                 discord_api_base_url="ftp://" + TEST_DISCORD_TOKEN, database_url="mysql://x",
                 discord_gateway_url=TEST_MISTRAL_KEY)
    message = describe_settings_error(raised.value)
    logging.getLogger("bot").error("%s", message)
    assert "DISCORD_API_BASE_URL" in message
    assert not leaks(message)
    settings = Settings(_env_file=None, discord_token=TEST_DISCORD_TOKEN, mistral_api_key=TEST_MISTRAL_KEY)
    assert not leaks(repr(settings)) and not leaks(str(settings)) and not leaks(str(settings.model_dump()))
    assert_clean_logs(caplog, rendered)


async def test_a_refused_login_never_shows_the_token(fake_discord, fake_discord_env, debug_logs, tmp_path) -> None:
    caplog, rendered = debug_logs
    build_world(fake_discord)
    fake_discord.token = "the-token-discord-expects-0000"
    with pytest.raises(discord.LoginFailure) as raised:
        async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)):
            pass
    assert not leaks(exception_text(raised.value))
    assert_clean_logs(caplog, rendered)


async def test_a_mistral_401_and_500_never_show_the_key(debug_logs) -> None:
    caplog, rendered = debug_logs
    async with FakeMistral(api_key=TEST_MISTRAL_KEY) as fake:
        chat = ChatModel(Mistral(api_key="wrong-key-" + TEST_MISTRAL_KEY[::-1], server_url=fake.url),
                         model="mistral-small-latest", retry=RetryPolicy(max_attempts=1))
        errors: list[MistralError] = []
        for key in (None, TEST_MISTRAL_KEY):
            if key is not None:
                chat = ChatModel(Mistral(api_key=key, server_url=fake.url), model="mistral-small-latest",
                                 retry=RetryPolicy(max_attempts=2, base_delay=0.01))
                fake.faults.fail_next("chat", times=2, status=500)
            stream = chat.stream([ChatMessage(role="user", content="hi")], max_tokens=10)
            with pytest.raises(MistralError) as raised:
                async for _ in stream:
                    pass
            await stream.aclose()
            errors.append(raised.value)
        assert [e.status for e in errors] == [401, 500]
    for error in errors:
        assert not leaks(exception_text(error)), exception_text(error)
    assert_clean_logs(caplog, rendered)


async def test_a_whole_session_never_leaks_a_secret(
    fake_discord, fake_voice, fake_discord_env, debug_logs, tmp_path: Path
) -> None:
    caplog, rendered = debug_logs
    world = build_world(fake_discord)
    async with FakeMistral(api_key=TEST_MISTRAL_KEY) as fake_mistral:
        fake_mistral.transcribe = lambda _audio: "What is the capital of France?"
        fake_mistral.reply = lambda _messages: "Paris."
        async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path, world=world) as call:
            assert call.bot.settings.mistral_api_key.get_secret_value() == TEST_MISTRAL_KEY
            for command in ("usage show", "history show", "voice show"):
                await (await fake_discord.invoke(
                    guild_id=world.guild.id, user_id=world.member_id, command=command)).wait_reply(timeout=10)
            # A command that fails inside is logged with its traceback.
            await (await fake_discord.invoke(
                guild_id=world.guild.id, user_id=world.admin_id, command="history clear")).wait_reply(timeout=10)

            await call.speaker.speak(spoken_question(seed=1))
            await wait_turns(call.bot, world.guild.id, 2)
            await call.fake_voice.bot_audio(world.guild.id).wait_for_silence()

        assert fake_mistral.requests and all(r.authorized for r in fake_mistral.requests)

    assert_clean_logs(caplog, rendered)
    stored = database_bytes(tmp_path)
    assert stored and not leaks(stored), "a secret is stored in the database files"
