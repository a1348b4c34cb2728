"""Answering slash commands: acknowledged first, then replied to, ephemeral unless public.

Every command is deferred before anything slow runs (the rate limiter reads the database or
Redis; Discord drops an interaction not acknowledged within 3 s). A command whose answer the
channel should see (/join, /leave) is marked ``PUBLIC`` and deferred publicly; its refusals and
errors still reach only the member: the public "thinking" message is deleted first, because
Discord's first follow-up after a deferral takes the deferral's visibility, whatever it asks.
"""

from __future__ import annotations

import logging
from typing import Any

import discord

log = logging.getLogger(__name__)

PUBLIC = {"public": True}  # app_commands.command(extras=PUBLIC): the reply is for the channel
_PENDING_PUBLIC = "voxcord_public_thinking"  # interaction.extras key: a public deferral not yet answered


def replies_publicly(interaction: discord.Interaction) -> bool:
    command = interaction.command
    return bool(command is not None and command.extras.get("public"))


async def acknowledge(interaction: discord.Interaction) -> bool:
    """Defer the command now (public or ephemeral as it is marked); False if Discord refused."""
    if interaction.response.is_done():
        return True
    public = replies_publicly(interaction)
    try:
        await interaction.response.defer(ephemeral=not public, thinking=True)
    except discord.HTTPException as error:
        log.warning("Could not acknowledge interaction %s: %s", interaction.id, error)
        return False
    interaction.extras[_PENDING_PUBLIC] = public
    return True


async def reply(
    interaction: discord.Interaction, content: str, *, ephemeral: bool = True, **kwargs: Any
) -> discord.WebhookMessage | None:
    """Answer the command, whether or not it was deferred; returns the follow-up message."""
    if not interaction.response.is_done():
        await interaction.response.send_message(content, ephemeral=ephemeral, **kwargs)
        return None
    if interaction.extras.pop(_PENDING_PUBLIC, False) and ephemeral:
        # Only the member should see this: drop the public "thinking" message first.
        try:
            await interaction.delete_original_response()
        except discord.HTTPException as error:
            log.info("Could not delete the thinking message of interaction %s: %s", interaction.id, error)
    return await interaction.followup.send(content, ephemeral=ephemeral, wait=True, **kwargs)
