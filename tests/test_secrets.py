"""The Discord token and the Mistral key never leak: not in logs, the database, or exceptions.

Every test in the suite runs under the secrets check of ``tests/secrets_check.py`` (all loggers
at DEBUG, each record's raw text searched). Here representative flows also check what that check
cannot see: a settings error, a refused login, a good login, slash commands, a spoken turn through
both fakes, and Mistral 401 and 500 failures (through the production chat client against the
fake), with their exceptions and the database files searched too. The last tests prove the
suite-wide check fails a test that logs a secret.
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path
from types import SimpleNamespace

import discord
import pytest
from mistralai.client import Mistral
from pydantic import ValidationError

from bot.config import Settings, describe_settings_error
from bot.mistral import ChatMessage, ChatModel, MistralError, RetryPolicy
from tests.e2e.conversation_support import call_in_progress, wait_turns
from tests.fakes.mistral import FakeMistral
from tests.fakes.synth import spoken_question
from tests.fakes.tls import TestCertificates
from tests.harness import TEST_DISCORD_TOKEN, TEST_MISTRAL_KEY, build_world, running_bot, settings_for
from tests.secrets_check import SecretsCheck, leaks

ROOT = Path(__file__).resolve().parents[1]


def database_bytes(folder: Path) -> str:
    """The SQLite file and any WAL / journal next to it, as text that keeps every byte."""
    return "".join(path.read_bytes().decode("latin-1") for path in sorted(folder.glob("voxcord.db*")))


def exception_text(error: BaseException) -> str:
    return "\n".join([repr(error), str(error), "".join(traceback.format_exception(error))])


def test_settings_errors_never_echo_a_secret(secrets_check: SecretsCheck) -> None:
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
    assert secrets_check.records_seen, "the flow logged nothing: the capture is not working"
    secrets_check.assert_clean()


async def test_a_refused_login_never_shows_the_token(
    fake_discord, fake_discord_env, secrets_check: SecretsCheck, tmp_path: Path
) -> None:
    build_world(fake_discord)
    fake_discord.token = "the-token-discord-expects-0000"
    secrets_check.watch(fake_discord.token)
    with pytest.raises(discord.LoginFailure) as raised:
        async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)):
            pass
    assert not leaks(exception_text(raised.value), secrets_check.secrets())
    assert secrets_check.records_seen, "the flow logged nothing: the capture is not working"
    secrets_check.assert_clean()


async def test_a_mistral_401_and_500_never_show_the_key(secrets_check: SecretsCheck,
                                                        trusted_certificates: TestCertificates) -> None:
    wrong_key = "wrong-key-" + TEST_MISTRAL_KEY[::-1]
    secrets_check.watch(wrong_key)
    async with FakeMistral(trusted_certificates, api_key=TEST_MISTRAL_KEY) as fake:
        chat = ChatModel(Mistral(api_key=wrong_key, server_url=fake.url),
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
        assert not leaks(exception_text(error), secrets_check.secrets()), exception_text(error)
    assert secrets_check.records_seen, "the flow logged nothing: the capture is not working"
    secrets_check.assert_clean()


async def test_a_whole_session_never_leaks_a_secret(
    fake_discord, fake_voice, fake_discord_env, secrets_check: SecretsCheck, tmp_path: Path,
    trusted_certificates: TestCertificates,
) -> None:
    world = build_world(fake_discord)
    async with FakeMistral(trusted_certificates, api_key=TEST_MISTRAL_KEY) as fake_mistral:
        fake_mistral.transcribe = lambda _audio: "What is the capital of France?"
        fake_mistral.reply = lambda _messages: "Paris."
        async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path, world=world) as call:
            assert call.bot.settings.mistral_api_key.get_secret_value() == TEST_MISTRAL_KEY
            for command in ("usage show", "history show", "voice show"):
                await (await fake_discord.invoke(
                    guild_id=world.guild.id, user_id=world.member_id, command=command)).wait_reply(timeout=10)
            # A command that fails inside is logged with its traceback.
            await (await fake_discord.invoke(
                guild_id=world.guild.id, user_id=world.admin_id, command="admin history clear")).wait_reply(timeout=10)

            await call.speaker.speak(spoken_question(seed=1))
            await wait_turns(call.bot, world.guild.id, 2)
            await call.fake_voice.bot_audio(world.guild.id).wait_for_silence()

        assert fake_mistral.requests and all(r.authorized for r in fake_mistral.requests)

    assert secrets_check.records_seen, "the flow logged nothing: the capture is not working"
    secrets_check.assert_clean()
    stored = database_bytes(tmp_path)
    assert stored and not leaks(stored), "a secret is stored in the database files"


CHECKED_MODULE = """
import logging

import pytest

from tests.harness import TEST_DISCORD_TOKEN

log = logging.getLogger("bot.example")


def test_logs_the_token_at_debug():
    log.debug("logging in with %s", TEST_DISCORD_TOKEN)


def test_logs_the_token_in_a_traceback():
    try:
        raise RuntimeError("refused " + TEST_DISCORD_TOKEN)
    except RuntimeError:
        log.debug("login failed", exc_info=True)


def test_a_subprocess_log_holds_the_token(tmp_path):
    (tmp_path / "bot.log").write_text("INFO discord.client: token " + TEST_DISCORD_TOKEN)


def test_logs_only_redacted_text(tmp_path):
    log.debug("logging in with %s", "[redacted]")
    (tmp_path / "bot.log").write_text("INFO discord.client: token [redacted]")


@pytest.mark.secrets_in_logs_expected(reason="proves the opt-out")
def test_opted_out():
    log.debug("logging in with %s", TEST_DISCORD_TOKEN)


@pytest.mark.secrets_in_logs_expected
def test_opted_out_without_a_reason():
    pass
"""


def test_the_suite_wide_check_fails_a_test_that_logs_a_secret(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A subprocess, so the inner tests' logging never reaches this test's own check.
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeconftest('pytest_plugins = ["tests.secrets_check"]')
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n"
                     "markers =\n    secrets_in_logs_expected(reason): as in pyproject.toml\n")
    pytester.makepyfile(test_checked=CHECKED_MODULE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rE")
    # The three leaking tests pass their call and error at teardown; the reasonless opt-out errors.
    result.assert_outcomes(passed=5, errors=4)
    report = result.stdout.str()
    for expected in (
        "ERROR at teardown of test_logs_the_token_at_debug",
        "DEBUG bot.example (raw record; masked by RedactingFormatter): 'logging in with [redacted]'",
        "ERROR at teardown of test_logs_the_token_in_a_traceback",
        "RuntimeError: refused [redacted]",
        "ERROR at teardown of test_a_subprocess_log_holds_the_token",
        "file bot.log: 'INFO discord.client: token [redacted]'",
        "ERROR at setup of test_opted_out_without_a_reason",
    ):
        assert expected in report, report
    assert "test_logs_only_redacted_text" not in report and "test_opted_out " not in report
    assert TEST_DISCORD_TOKEN not in report + result.stderr.str(), "the report itself leaks"


def test_the_check_reads_the_configured_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "token-from-the-environment-42")
    handler = SecretsCheck()
    handler.handle(logging.makeLogRecord({"name": "bot.example", "msg": "token-from-the-environment-42"}))
    handler.handle(logging.makeLogRecord({"name": "bot.example", "msg": "nothing to see"}))
    assert handler.records_seen == 2 and handler.leak_count == 1
    assert "token-from-the-environment-42" not in handler.report()


def test_what_the_bot_sent_to_discord_is_searched_too() -> None:
    # Replies, follow-ups and attachments reach users: a secret there is a leak like a log line.
    upload = SimpleNamespace(filename="export.txt", data=f"key={TEST_MISTRAL_KEY}".encode())
    fake = SimpleNamespace(
        sent_messages=[{"content": "Joined the voice channel."}],
        interactions=SimpleNamespace(records={"1": SimpleNamespace(answers=[
            SimpleNamespace(kind="followup", payload={"content": f"token {TEST_DISCORD_TOKEN}"}, files=()),
            SimpleNamespace(kind="edit", payload={"content": "fine"}, files=(upload,)),
        ])}),
        messages=SimpleNamespace(uploads={}),
    )
    check = SecretsCheck()
    check.scan_discord(fake)
    assert check.replies_seen == 4
    assert [leak.where for leak in check.leaks] == ["sent to Discord (interaction followup)",
                                                   "sent to Discord (file export.txt)"]
