"""/settings show and /admin settings ...: how the bot behaves in this server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.interactions import reply
from bot.store.models import AddressingMode
from cogs.admin import AdminCommands, add_admin_commands

if TYPE_CHECKING:
    from bot.app import VoxcordBot
    from bot.store import GuildSettings

MODES: dict[str, str] = {
    "auto": "answers everything when one person is in the channel, only when addressed by name when there are more",
    "always": "answers everything it hears",
    "wake_word": "answers only when addressed by name or wake word",
}


def describe(settings: GuildSettings, bot_name: str) -> str:
    wake = settings.wake_word or bot_name
    notices = f"<#{settings.text_channel_id}>" if settings.text_channel_id else "where /join was used"
    autojoin = f"when someone enters <#{settings.autojoin_channel_id}>" if settings.autojoin_channel_id else "off"
    lines = [
        f"**Addressing:** `{settings.addressing_mode}`: {MODES[settings.addressing_mode]}.",
        f"**Wake word:** {discord.utils.escape_markdown(wake)}"
        + ("" if settings.wake_word else " (my display name)"),
        f"**Persona:** {discord.utils.escape_markdown(settings.persona) if settings.persona else 'default'}",
        f"**Text channel for notices:** {notices}",
        f"**Joins by itself:** {autojoin}",
        f"**Captions:** {f'in <#{settings.captions_channel_id}>' if settings.captions_channel_id else 'off'}",
        f"**History kept for:** {settings.retention_days} days",
        f"**Language:** {settings.language or 'detected from speech'}",
        f"**Vocabulary:** {discord.utils.escape_markdown(settings.vocabulary) if settings.vocabulary else 'none'}",
        "**Bots heard:** " + (", ".join(f"<@{b}>" for b in settings.heard_bots.split(",")) if settings.heard_bots
                              else "none (bots' audio is dropped unheard)"),
    ]
    return "\n".join(lines)


def bot_name(interaction: discord.Interaction) -> str:
    me = interaction.guild.me if interaction.guild else None
    return me.display_name if me else "Voxcord"


@app_commands.guild_only()
class SettingsCog(commands.GroupCog, group_name="settings"):
    """How the bot behaves in this server."""

    def __init__(self, bot: VoxcordBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="show")
    async def show(self, interaction: discord.Interaction) -> None:
        """Show this server's settings."""
        assert interaction.guild_id is not None
        settings = await self.bot.server_settings.get(interaction.guild_id)
        await reply(interaction, describe(settings, bot_name(interaction)))


class SettingsAdmin(AdminCommands):
    def __init__(self, bot: VoxcordBot) -> None:
        super().__init__(bot, name="settings", description="How the bot behaves in this server.")

    @app_commands.command(name="addressing")
    @app_commands.describe(mode="auto: addressed by name only when several people talk; always; wake_word.")
    async def addressing(self, interaction: discord.Interaction, mode: AddressingMode) -> None:
        """Choose when the bot answers what it hears."""
        assert interaction.guild_id is not None
        await self.bot.server_settings.set_addressing(interaction.guild_id, mode)
        await reply(interaction, f"Addressing is now `{mode}`: {MODES[mode]}.")

    @app_commands.command(name="wake-word")
    @app_commands.describe(word="The word that addresses the bot; leave empty to use its display name.")
    async def wake_word(self, interaction: discord.Interaction, word: str | None = None) -> None:
        """Set the word that addresses the bot (its display name by default)."""
        assert interaction.guild_id is not None
        cleaned = await self.bot.server_settings.set_wake_word(interaction.guild_id, word)
        shown = discord.utils.escape_markdown(cleaned or bot_name(interaction))
        await reply(interaction, f"Wake word is now **{shown}**.")

    @app_commands.command(name="persona")
    @app_commands.describe(text="How the bot should behave, e.g. 'A cheerful pirate'. Leave empty to reset.")
    async def persona(self, interaction: discord.Interaction, text: str | None = None) -> None:
        """Give the bot a persona (added to its instructions), or reset it."""
        assert interaction.guild_id is not None
        cleaned = await self.bot.server_settings.set_persona(interaction.guild_id, text)
        await reply(interaction, "Persona updated." if cleaned else "Persona reset to the default.")

    @app_commands.command(name="text-channel")
    @app_commands.describe(channel="Where the bot posts notices; leave empty to use the channel /join was used in.")
    async def text_channel(self, interaction: discord.Interaction, channel: discord.TextChannel | None = None) -> None:
        """Choose the text channel for the bot's notices."""
        assert interaction.guild_id is not None
        await self.bot.server_settings.set_text_channel(interaction.guild_id, channel.id if channel else None)
        where = channel.mention if channel else "the channel where /join is used"
        await reply(interaction, f"Notices will go to {where}.")

    @app_commands.command(name="autojoin")
    @app_commands.describe(channel="The voice channel to join when a member enters it; leave empty to turn it off.")
    async def autojoin(
        self, interaction: discord.Interaction, channel: discord.VoiceChannel | discord.StageChannel | None = None
    ) -> None:
        """Join a voice channel by itself whenever a member enters it (the privacy notice comes first)."""
        assert interaction.guild_id is not None
        await self.bot.server_settings.set_autojoin(interaction.guild_id, channel.id if channel else None)
        await reply(interaction, (
            f"I'll join {channel.mention} by myself when someone enters it, and post the privacy notice "
            "before I listen." if channel else "I'll join voice only when asked with /join."))

    @app_commands.command(name="captions")
    @app_commands.describe(
        mode="on: post each finished turn (who said what, and the reply) as text; off: stop.",
        channel="Where captions go (a text channel, a voice channel's chat or a thread); default: here.",
    )
    async def captions(
        self,
        interaction: discord.Interaction,
        mode: Literal["on", "off"],
        channel: discord.TextChannel | discord.VoiceChannel | discord.Thread | None = None,
    ) -> None:
        """Caption the conversation as text in a channel (for members who cannot hear it)."""
        assert interaction.guild_id is not None and interaction.guild is not None
        service = self.bot.captions
        assert service is not None
        if mode == "off":
            await service.turn_off(interaction.guild_id)
            await reply(interaction, "Captions are off.")
            return
        target = channel or interaction.channel
        if not isinstance(target, discord.TextChannel | discord.VoiceChannel | discord.Thread):
            await reply(interaction, "Pick a text channel, a voice channel's chat or a thread for the captions.")
            return
        missing = missing_post_permissions(target, interaction.guild.me)
        if missing:
            await reply(interaction,
                        f"I can't post in {target.mention}: I'm missing the {' and '.join(missing)} permission there.")
            return
        await service.turn_on(interaction.guild_id, target.id)
        await reply(interaction, f"Captions are on: what is said in voice, and my replies, will be posted in "
                    f"{target.mention} a turn at a time. Members who opted out are never heard, so never captioned.")

    @app_commands.command(name="language")
    @app_commands.describe(code="auto (detect it from speech) or a two-letter code such as en, fr, de.")
    async def language(self, interaction: discord.Interaction, code: str) -> None:
        """The language people speak here: recognised in it and answered in it (auto: detect)."""
        assert interaction.guild_id is not None
        language = await self.bot.server_settings.set_language(interaction.guild_id, code)
        await reply(interaction, "I'll detect the language and answer in the one spoken to me." if language is None
                    else f"I'll listen for `{language}` and answer in it.")

    @app_commands.command(name="vocabulary")
    @app_commands.describe(terms="Names and words to recognise, comma separated; leave empty to clear.")
    async def vocabulary(self, interaction: discord.Interaction, terms: str | None = None) -> None:
        """Words speech recognition should expect here (names, jargon), besides members' names."""
        assert interaction.guild_id is not None
        cleaned = await self.bot.server_settings.set_vocabulary(interaction.guild_id, terms)
        await reply(interaction, f"Vocabulary: {discord.utils.escape_markdown(cleaned)}." if cleaned
                    else "Vocabulary cleared.")

    @app_commands.command(name="hear-bot")
    @app_commands.describe(bot="A bot user in this server.", heard="Whether its audio is heard (not by default).")
    async def hear_bot(self, interaction: discord.Interaction, bot: discord.Member, heard: bool) -> None:
        """Let the bot hear another bot (a text-to-speech bot, say); bots' audio is dropped otherwise."""
        assert interaction.guild_id is not None
        if not bot.bot:
            await reply(interaction, "That member is not a bot: people are heard already.")
            return
        await self.bot.server_settings.set_bot_heard(interaction.guild_id, bot.id, heard)
        state = "now heard" if heard else "no longer heard"
        await reply(interaction, f"{bot.mention} is {state} (from the next /join).")


def missing_post_permissions(
    channel: discord.TextChannel | discord.VoiceChannel | discord.Thread, me: discord.Member
) -> list[str]:
    perms = channel.permissions_for(me)
    send = perms.send_messages_in_threads if isinstance(channel, discord.Thread) else perms.send_messages
    needed = (("View Channel", perms.view_channel),
              ("Send Messages in Threads" if isinstance(channel, discord.Thread) else "Send Messages", send))
    return [name for name, ok in needed if not ok]


async def setup(bot: VoxcordBot) -> None:
    await bot.add_cog(SettingsCog(bot))
    add_admin_commands(bot, SettingsAdmin(bot))
