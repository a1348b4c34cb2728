"""The invite link the bot logs at start asks for exactly the scopes and permissions it needs."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import discord
import pytest

from bot.app import invite_url
from tests.fakes.discord import FakeDiscord
from tests.harness import build_world, running_bot, settings_for

EXPECTED = discord.Permissions(view_channel=True, connect=True, speak=True, send_messages=True, attach_files=True,
                               read_message_history=True)


def test_invite_url_has_exact_scopes_and_permissions() -> None:
    query = parse_qs(urlparse(invite_url(1234)).query)
    assert query["client_id"] == ["1234"]
    assert set(query["scope"][0].split()) == {"bot", "applications.commands"}
    assert int(query["permissions"][0]) == EXPECTED.value


async def test_start_logs_the_invite_url(
    fake_discord: FakeDiscord, fake_discord_env: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    build_world(fake_discord)
    with caplog.at_level(logging.INFO, logger="bot.app"):
        async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)):
            pass
    logged = [r.getMessage() for r in caplog.records if "Invite link" in r.getMessage()]
    assert logged == [f"Invite link: {invite_url(fake_discord.application_id)}"]
