"""The Bot: owns the engine's shared resources, loads an explicit cog list, syncs commands."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import UserFacingError
from bot.interactions import acknowledge, reply
from bot.services.history import HistoryService
from bot.services.settings import SettingsService
from bot.services.usage import UsageService
from bot.sharding import ShardPlan, recommended_shard_count

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.conversation.engine import ConversationEngine
    from bot.limits import CommandLimiter, UsageMeter
    from bot.services.captions import CaptionsService
    from bot.services.clips import VoiceClipService
    from bot.services.presence import VoicePresence
    from bot.services.privacy import PrivacyService, RetentionPurger
    from bot.services.sessions import VoiceSessions
    from bot.store import Database

log = logging.getLogger(__name__)

COGS: tuple[str, ...] = (
    "cogs.admin",  # first: the other cogs put their admin commands in its /admin group
    "cogs.voice",
    "cogs.voice_clip",
    "cogs.history",
    "cogs.settings",
    "cogs.status",
    "cogs.privacy",
    "cogs.usage",
)

# Exactly what the bot needs in a guild; the invite link asks for these and no more.
# Read Message History: forget-me reads a caption message back to cut a member's lines out of it.
REQUIRED_PERMISSIONS = discord.Permissions(
    view_channel=True, connect=True, speak=True, send_messages=True, attach_files=True, read_message_history=True
)
INVITE_SCOPES = ("bot", "applications.commands")

GENERIC_APOLOGY = "Sorry, something went wrong on my side. It has been logged; please try again."
RATE_LIMITED = "Slow down a little: too many commands. Try again in a moment."


def invite_url(application_id: int) -> str:
    return discord.utils.oauth_url(
        application_id, permissions=REQUIRED_PERMISSIONS, scopes=INVITE_SCOPES
    )


async def reply_ephemeral(interaction: discord.Interaction, message: str) -> None:
    """Answer whether or not the interaction was already acknowledged (deferred)."""
    await reply(interaction, message, ephemeral=True)


class VoxcordTree(app_commands.CommandTree):
    """One place that acknowledges every command and turns errors into replies: known ones
    short, unknown ones logged."""

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        # Acknowledged before anything slow: the rate limiter below reads the database or Redis,
        # and Discord shows "The application did not respond" after 3 s without an answer.
        if not await acknowledge(interaction):
            return False
        limiter: CommandLimiter | None = getattr(self.client, "command_limiter", None)
        if limiter is None:
            return True
        refusal = await limiter.check(
            interaction.guild_id, interaction.user.id,
            manages_guild=interaction.guild_id is not None and interaction.permissions.manage_guild,
        )
        if refusal is None:
            return True
        # Every refused command is answered (interaction callbacks do not count against the
        # bot's global rate limit); the limiter words only the first refusal of an episode.
        try:
            await reply_ephemeral(interaction, refusal or RATE_LIMITED)
        except discord.HTTPException:
            log.warning("Could not deliver a rate-limit reply for interaction %s", interaction.id)
        return False

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        original = getattr(error, "original", error)
        if isinstance(original, UserFacingError):
            message = original.message
        elif isinstance(error, app_commands.MissingPermissions):
            needed = ", ".join(p.replace("_", " ").title() for p in error.missing_permissions)
            message = f"You need the {needed} permission to do that."
        elif isinstance(error, app_commands.BotMissingPermissions):
            needed = ", ".join(p.replace("_", " ").title() for p in error.missing_permissions)
            message = f"I need the {needed} permission here to do that."
        elif isinstance(error, app_commands.CommandOnCooldown):
            message = f"Slow down a little: try again in {error.retry_after:.0f} s."
        elif isinstance(error, app_commands.NoPrivateMessage):
            message = "This command works only in a server."
        elif isinstance(error, app_commands.CheckFailure):
            message = "You can't use this command here."
        else:
            command = interaction.command.qualified_name if interaction.command else "?"
            log.error(
                "Command /%s failed in guild %s for user %s",
                command, interaction.guild_id, interaction.user.id, exc_info=original,
            )
            message = GENERIC_APOLOGY
        try:
            await reply_ephemeral(interaction, message)
        except discord.HTTPException:
            log.warning("Could not deliver an error reply for interaction %s", interaction.id)


class VoxcordBot(commands.AutoShardedBot):
    # Always the sharded client: unsharded it runs Discord's recommended count (1 for small
    # bots, which is the plain Bot's single connection), and SHARD_COUNT/SHARD_IDS make this
    # process one shard group of several without a second code path (bot/sharding.py).
    def __init__(
        self,
        *,
        settings: Settings,
        database: Database,
        sessions: VoiceSessions,
        clips: VoiceClipService,
        engine: ConversationEngine | None = None,
        connector: aiohttp.BaseConnector | None = None,
        cogs: tuple[str, ...] = COGS,
        guild_ready_timeout: float = 2.0,
        meter: UsageMeter | None = None,
        command_limiter: CommandLimiter | None = None,
        privacy: PrivacyService | None = None,
        purger: RetentionPurger | None = None,
        presence: VoicePresence | None = None,
        captions: CaptionsService | None = None,
    ) -> None:
        # Default intents include guilds and voice_states; nothing privileged is needed.
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            tree_cls=VoxcordTree,
            help_command=None,
            connector=connector,
            guild_ready_timeout=guild_ready_timeout,
            **ShardPlan.from_settings(settings).client_options(),
        )
        self.settings = settings
        self.database = database
        self.sessions = sessions
        self.clips = clips
        self.engine = engine
        self.meter = meter
        self.command_limiter = command_limiter
        self.privacy = privacy
        self.history = HistoryService(database)
        self.server_settings = SettingsService(database)
        self.usage = UsageService(database, meter)
        self.presence = presence
        self._purger = purger
        self.captions = captions
        self._cog_modules = cogs

    async def setup_hook(self) -> None:
        if not self.shard_count:  # None until set (discord.py types it int)
            # Fixing the count here (login is done, connect not yet) keeps DISCORD_GATEWAY_URL;
            # left None, discord.py would connect to the URL /gateway/bot returns instead.
            self.shard_count = await recommended_shard_count(self.http)
        log.info("Gateway: %s", ShardPlan(self.shard_count, ShardPlan.from_settings(self.settings).ids).describe())
        for module in self._cog_modules:
            await self.load_extension(module)
        if self.settings.dev_guild_id:
            guild = discord.Object(self.settings.dev_guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
        else:
            synced = await self.tree.sync()
        log.info("Synced %d slash commands", len(synced))
        if self.application_id:
            log.info("Invite link: %s", invite_url(self.application_id))
        if self._purger is not None:
            self._purger.start()

    async def on_voice_state_update(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        if self.user is not None and member.id == self.user.id and after.channel is not None:
            self.sessions.channel_changed(member.guild.id, after.channel.id)
        if self.presence is not None:
            await self.presence.on_voice_state_update(member, before, after)

    async def on_ready(self) -> None:
        log.info("Ready as %s in %d guild(s)", self.user, len(self.guilds))

    async def close(self) -> None:
        # Leave every voice channel before the gateway goes away, so Discord shows us gone at once.
        if self.presence is not None:
            await self.presence.close()
        await self.sessions.leave_all()
        if self._purger is not None:
            await self._purger.stop()
        loop: object = self.loop  # a sentinel until entered, though typed as an event loop
        if not isinstance(loop, asyncio.AbstractEventLoop):
            # Never entered nor logged in (e.g. a test that only loads cogs): AutoShardedClient's
            # close needs the event queue that entering creates (discord.py 2.7 raises otherwise).
            await self.__aenter__()
        await super().close()
