"""/admin: every command that changes how the bot behaves in a server, for Manage Server only.

Discord hides a command from members without its ``default_member_permissions``, but reads that
field only on top-level commands (it is ignored on subcommands), so the admin commands share one
top-level group that carries it: members never see them. Each area's cog adds its own subgroup
(``/admin voice``, ``/admin settings``...) built on ``AdminCommands``, whose check holds the same
rule on the server side, where it cannot be edited away by a server's integration settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands

if TYPE_CHECKING:
    from bot.app import VoxcordBot

ADMIN = "admin"
ADMIN_PERMISSIONS = discord.Permissions(manage_guild=True)


class AdminCommands(app_commands.Group):
    """One area's admin subgroup: every command in it needs Manage Server."""

    def __init__(self, bot: VoxcordBot, *, name: str, description: str) -> None:
        super().__init__(name=name, description=description)
        self.bot = bot

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        if not interaction.permissions.manage_guild:
            raise app_commands.MissingPermissions(["manage_guild"])
        return True


def add_admin_commands(bot: VoxcordBot, group: AdminCommands) -> None:
    """Put an area's admin subgroup under /admin (cogs.admin is loaded before the other cogs)."""
    root = bot.tree.get_command(ADMIN)
    if not isinstance(root, app_commands.Group):
        raise RuntimeError("cogs.admin must be loaded before the cogs that add admin commands")
    root.add_command(group)


async def setup(bot: VoxcordBot) -> None:
    bot.tree.add_command(app_commands.Group(
        name=ADMIN, description="Change how the bot behaves in this server (Manage Server).",
        guild_only=True, default_permissions=ADMIN_PERMISSIONS,
    ))


async def teardown(bot: VoxcordBot) -> None:
    bot.tree.remove_command(ADMIN)
