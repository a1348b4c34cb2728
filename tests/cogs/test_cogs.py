"""Meta-test: every cog loads, no two slash commands collide, every command documents itself."""

from __future__ import annotations

import importlib
from unittest.mock import create_autospec

import pytest
from discord import app_commands

from bot.app import COGS, VoxcordBot
from bot.config import Settings
from bot.services.clips import VoiceClipService
from bot.services.sessions import VoiceSessions
from bot.store import Database


@pytest.fixture
async def loaded_bot() -> VoxcordBot:
    settings = Settings(_env_file=None, discord_token="t" * 10, mistral_api_key="k" * 10)
    bot = VoxcordBot(
        settings=settings,
        database=create_autospec(Database, instance=True),
        sessions=create_autospec(VoiceSessions, instance=True),
        clips=create_autospec(VoiceClipService, instance=True),
    )
    for module in COGS:
        await bot.load_extension(module)
    yield bot
    await bot.close()


def walk(commands: list) -> list[app_commands.Command]:
    found = []
    for command in commands:
        if isinstance(command, app_commands.Group):
            found.extend(walk(command.commands))
        else:
            found.append(command)
    return found


def test_every_cog_module_has_setup() -> None:
    for module in COGS:
        assert callable(importlib.import_module(module).setup), module


async def test_no_two_commands_collide(loaded_bot: VoxcordBot) -> None:
    names = [c.qualified_name for c in walk(loaded_bot.tree.get_commands())]
    assert len(names) == len(set(names)), names
    assert {"join", "leave", "voice set", "voice show", "voice reset", "history show",
            "history clear"} <= set(names)


async def test_every_command_and_parameter_is_described(loaded_bot: VoxcordBot) -> None:
    for command in walk(loaded_bot.tree.get_commands()):
        assert command.description and command.description != "…", command.qualified_name
        for parameter in command.parameters:
            assert parameter.description and parameter.description != "…", (
                command.qualified_name, parameter.name)


async def test_admin_commands_require_manage_guild(loaded_bot: VoxcordBot) -> None:
    admin = {"voice set", "voice reset", "history clear"}
    for command in walk(loaded_bot.tree.get_commands()):
        perms = command.default_permissions
        if command.qualified_name in admin:
            assert perms is not None and perms.manage_guild, command.qualified_name
