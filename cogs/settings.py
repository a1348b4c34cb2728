"""/settings: how the bot behaves in this server (admins change, everyone may look)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.store.repositories.guilds import MAX_VOCABULARY

if TYPE_CHECKING:
    from bot.app import VoxcordBot
    from bot.store import GuildSettings

MODES = {
    "auto": "answers everything when one person is in the channel, only when addressed by name when there are more",
    "always": "answers everything it hears",
    "wake_word": "answers only when addressed by name or wake word",
}
PERSONA_LIMIT = 1000


def describe(settings: GuildSettings, bot_name: str) -> str:
    wake = settings.wake_word or bot_name
    notices = f"<#{settings.text_channel_id}>" if settings.text_channel_id else "where /join was used"
    lines = [
        f"**Addressing:** `{settings.addressing_mode}`: {MODES[settings.addressing_mode]}.",
        f"**Wake word:** {discord.utils.escape_markdown(wake)}"
        + ("" if settings.wake_word else " (my display name)"),
        f"**Persona:** {discord.utils.escape_markdown(settings.persona) if settings.persona else 'default'}",
        f"**Text channel for notices:** {notices}",
        f"**Captions:** {f'in <#{settings.captions_channel_id}>' if settings.captions_channel_id else 'off'}",
        f"**History kept for:** {settings.retention_days} days",
        f"**Language:** {settings.language or 'detected from speech'}",
        f"**Vocabulary:** {discord.utils.escape_markdown(settings.vocabulary) if settings.vocabulary else 'none'}",
        "**Bots heard:** " + (", ".join(f"<@{b}>" for b in settings.heard_bots.split(",")) if settings.heard_bots
                              else "none (bots' audio is dropped unheard)"),
    ]
    return "\n".join(lines)


@app_commands.guild_only()
class SettingsCog(commands.GroupCog, group_name="settings"):
    """How the bot behaves in this server."""

    def __init__(self, bot: VoxcordBot) -> None:
        self.bot = bot
        super().__init__()

    def _bot_name(self, interaction: discord.Interaction) -> str:
        me = interaction.guild.me if interaction.guild else None
        return me.display_name if me else "Voxcord"

    @app_commands.command(name="show")
    async def show(self, interaction: discord.Interaction) -> None:
        """Show this server's settings."""
        assert interaction.guild_id is not None
        settings = await self.bot.database.guilds.get(interaction.guild_id)
        await interaction.response.send_message(describe(settings, self._bot_name(interaction)), ephemeral=True)

    @app_commands.command(name="addressing")
    @app_commands.describe(mode="auto: addressed by name only when several people talk; always; wake_word.")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def addressing(
        self, interaction: discord.Interaction, mode: Literal["auto", "always", "wake_word"]
    ) -> None:
        """Choose when the bot answers what it hears."""
        assert interaction.guild_id is not None
        await self.bot.database.guilds.update(interaction.guild_id, addressing_mode=mode)
        await interaction.response.send_message(f"Addressing is now `{mode}`: {MODES[mode]}.", ephemeral=True)

    @app_commands.command(name="wake-word")
    @app_commands.describe(word="The word that addresses the bot; leave empty to use its display name.")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def wake_word(self, interaction: discord.Interaction, word: str | None = None) -> None:
        """Set the word that addresses the bot (its display name by default)."""
        assert interaction.guild_id is not None
        cleaned = (word or "").strip() or None
        if cleaned is not None and (len(cleaned) > 32 or not any(ch.isalnum() for ch in cleaned)):
            await interaction.response.send_message(
                "A wake word is a name or a short word (at most 32 characters).", ephemeral=True)
            return
        await self.bot.database.guilds.update(interaction.guild_id, wake_word=cleaned)
        shown = cleaned or self._bot_name(interaction)
        await interaction.response.send_message(
            f"Wake word is now **{discord.utils.escape_markdown(shown)}**.", ephemeral=True)

    @app_commands.command(name="persona")
    @app_commands.describe(text="How the bot should behave, e.g. 'A cheerful pirate'. Leave empty to reset.")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def persona(self, interaction: discord.Interaction, text: str | None = None) -> None:
        """Give the bot a persona (added to its instructions), or reset it."""
        assert interaction.guild_id is not None
        cleaned = (text or "").strip() or None
        if cleaned is not None and len(cleaned) > PERSONA_LIMIT:
            await interaction.response.send_message(
                f"Keep the persona under {PERSONA_LIMIT} characters.", ephemeral=True)
            return
        await self.bot.database.guilds.update(interaction.guild_id, persona=cleaned)
        await interaction.response.send_message(
            "Persona updated." if cleaned else "Persona reset to the default.", ephemeral=True)

    @app_commands.command(name="text-channel")
    @app_commands.describe(channel="Where the bot posts notices; leave empty to use the channel /join was used in.")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def text_channel(
        self, interaction: discord.Interaction, channel: discord.TextChannel | None = None
    ) -> None:
        """Choose the text channel for the bot's notices."""
        assert interaction.guild_id is not None
        await self.bot.database.guilds.update(interaction.guild_id, text_channel_id=channel.id if channel else None)
        where = channel.mention if channel else "the channel where /join is used"
        await interaction.response.send_message(f"Notices will go to {where}.", ephemeral=True)

    @app_commands.command(name="captions")
    @app_commands.describe(
        mode="on: post each finished turn (who said what, and the reply) as text; off: stop.",
        channel="Where captions go (a text channel, a voice channel's chat or a thread); default: here.",
    )
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
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
            await interaction.response.send_message("Captions are off.", ephemeral=True)
            return
        target = channel or interaction.channel
        if not isinstance(target, discord.TextChannel | discord.VoiceChannel | discord.Thread):
            await interaction.response.send_message(
                "Pick a text channel, a voice channel's chat or a thread for the captions.", ephemeral=True)
            return
        missing = missing_post_permissions(target, interaction.guild.me)
        if missing:
            await interaction.response.send_message(
                f"I can't post in {target.mention}: I'm missing the {' and '.join(missing)} permission there.",
                ephemeral=True)
            return
        await service.turn_on(interaction.guild_id, target.id)
        await interaction.response.send_message(
            f"Captions are on: what is said in voice, and my replies, will be posted in {target.mention} "
            "a turn at a time. Members who opted out are never heard, so never captioned.", ephemeral=True)


    @app_commands.command(name="language")
    @app_commands.describe(code="auto (detect it from speech) or a two-letter code such as en, fr, de.")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def language(self, interaction: discord.Interaction, code: str) -> None:
        """The language people speak here: recognised in it and answered in it (auto: detect)."""
        assert interaction.guild_id is not None
        cleaned = code.strip().lower()
        if cleaned != "auto" and re.fullmatch(r"[a-z]{2}", cleaned) is None:
            await interaction.response.send_message(
                "Use `auto` or a two-letter language code such as `en`, `fr` or `de`.", ephemeral=True)
            return
        await self.bot.database.guilds.update(interaction.guild_id, language=None if cleaned == "auto" else cleaned)
        await interaction.response.send_message(
            "I'll detect the language and answer in the one spoken to me." if cleaned == "auto"
            else f"I'll listen for `{cleaned}` and answer in it.", ephemeral=True)

    @app_commands.command(name="vocabulary")
    @app_commands.describe(terms="Names and words to recognise, comma separated; leave empty to clear.")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def vocabulary(self, interaction: discord.Interaction, terms: str | None = None) -> None:
        """Words speech recognition should expect here (names, jargon), besides members' names."""
        assert interaction.guild_id is not None
        cleaned = ", ".join(t.strip() for t in (terms or "").split(",") if t.strip()) or None
        if cleaned is not None and len(cleaned) > MAX_VOCABULARY:
            await interaction.response.send_message(
                f"Keep the vocabulary under {MAX_VOCABULARY} characters.", ephemeral=True)
            return
        await self.bot.database.guilds.update(interaction.guild_id, vocabulary=cleaned)
        await interaction.response.send_message(
            f"Vocabulary: {discord.utils.escape_markdown(cleaned)}." if cleaned else "Vocabulary cleared.",
            ephemeral=True)

    @app_commands.command(name="hear-bot")
    @app_commands.describe(bot="A bot user in this server.", heard="Whether its audio is heard (not by default).")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def hear_bot(self, interaction: discord.Interaction, bot: discord.Member, heard: bool) -> None:
        """Let the bot hear another bot (a text-to-speech bot, say); bots' audio is dropped otherwise."""
        assert interaction.guild_id is not None
        if not bot.bot:
            await interaction.response.send_message("That member is not a bot: people are heard already.",
                                                    ephemeral=True)
            return
        current = await self.bot.database.guilds.get(interaction.guild_id)
        ids = [i for i in (current.heard_bots or "").split(",") if i and i != str(bot.id)]
        if heard:
            ids.append(str(bot.id))
        await self.bot.database.guilds.update(interaction.guild_id, heard_bots=",".join(ids) or None)
        await interaction.response.send_message(
            f"{bot.mention} is {'now heard' if heard else 'no longer heard'} (from the next /join).", ephemeral=True)


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
