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
from cogs.admin import AdminCommands


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
    assert {"join", "leave", "admin voice set", "voice show", "admin voice reset", "history show",
            "admin history clear"} <= set(names)


async def test_every_command_and_parameter_is_described(loaded_bot: VoxcordBot) -> None:
    for command in walk(loaded_bot.tree.get_commands()):
        assert command.description and command.description != "…", command.qualified_name
        for parameter in command.parameters:
            assert parameter.description and parameter.description != "…", (
                command.qualified_name, parameter.name)


ADMIN_ONLY = {
    "admin voice set", "admin voice reset", "admin history clear", "admin settings addressing",
    "admin settings wake-word", "admin settings persona", "admin settings text-channel", "admin settings autojoin",
    "admin usage budget", "admin usage turn-rate", "admin usage member-turn-rate", "admin usage command-rate",
    "admin privacy consent-mode", "admin privacy retention", "admin settings captions", "admin settings language",
    "admin settings vocabulary", "admin settings hear-bot",
}


async def test_admin_commands_are_hidden_from_members_by_discord(loaded_bot: VoxcordBot) -> None:
    # Discord reads default_member_permissions only on top-level commands: each admin command
    # must sit under a top-level command that carries Manage Server, and none elsewhere.
    top = {command.name: command for command in loaded_bot.tree.get_commands()}
    admin = top["admin"]
    assert admin.default_permissions is not None and admin.default_permissions.manage_guild
    assert admin.guild_only
    under_admin = {c.qualified_name for c in walk([admin])}
    assert under_admin >= ADMIN_ONLY, ADMIN_ONLY - under_admin
    for name, command in top.items():
        if name != "admin":
            assert command.default_permissions is None, name  # what members use stays visible


async def test_every_admin_command_checks_manage_guild_on_the_server_side(loaded_bot: VoxcordBot) -> None:
    for command in walk([loaded_bot.tree.get_command("admin")]):
        # By name: discord.py executes each extension module afresh, so the class object the cogs
        # subclassed is not the one this test module imported.
        assert AdminCommands.__name__ in [c.__name__ for c in type(command.parent).__mro__], command.qualified_name
        assert command.binding is command.parent, command.qualified_name  # its check runs
