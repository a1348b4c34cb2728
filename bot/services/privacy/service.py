"""Privacy: who may be heard, what the bot tells a channel when it joins, how long text is kept,
and each member's export and erasure.

Audio is never stored anywhere: the receive path hands PCM to the speech-to-text stream and
nothing else (``tests/e2e/test_privacy.py`` scans the data directory and database after a turn).
What is kept is text, in ``turns``, for the guild's ``retention_days``; ``RetentionPurger`` deletes
older turns, and with a ``CaptionEraser`` the caption messages posted in Discord too (forget-me
cuts a member's lines out of them). Consent is decided per member: ``GuildAdmission`` answers "may this user be heard?"
from memory, because the voice receiver asks on its reader thread (once per SSRC), where a
database call is out of the question.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord

from bot.errors import NoticeNotPostedError
from bot.services.privacy.captions import CaptionEraser, CaptionsErased
from bot.services.privacy.consent import ConsentStatus, GuildAdmission, heard_by_default
from bot.services.privacy.notice import LISTENING_SUFFIX, listening_nick, notice_text, plain_name
from bot.services.privacy.retention import purge_guild
from bot.services.privacy.rights import ExportTooLargeError, Forgotten
from bot.store.models import ConsentMode, utc_now

if TYPE_CHECKING:
    from bot.store import Database, GuildSettings

log = logging.getLogger(__name__)

Notify = Callable[[str], Awaitable[None]]


@dataclass(slots=True)
class _Attached:
    admission: GuildAdmission
    notify: Notify | None = None
    voice_mention: str = ""
    original_nick: str | None = None
    set_nick: str | None = None


class PrivacyService:
    """Consent, the join notice and nickname, export and erasure. One per process, injected."""

    def __init__(self, *, database: Database, stt_host: str,
                 clock: Callable[[], dt.datetime] = utc_now, captions: CaptionEraser | None = None) -> None:
        self._db = database
        self._captions = captions
        self.stt_host = stt_host
        self._clock = clock
        self._attached: dict[int, _Attached] = {}
        # Serialises cache loads with writes, so a choice made during a join is never lost.
        self._locks: dict[int, asyncio.Lock] = {}

    def _lock(self, guild_id: int) -> asyncio.Lock:
        return self._locks.setdefault(guild_id, asyncio.Lock())

    # consent --------------------------------------------------------------------------------

    async def admission(self, guild_id: int, *, on_change: Callable[[], None] | None = None) -> GuildAdmission:
        """Begin a voice session: load the guild's consent into memory, where it stays (kept
        current by every change made here) until ``release``. ``on_change`` runs after each change."""
        async with self._lock(guild_id):
            settings = await self._db.guilds.get(guild_id)
            choices = await self._db.privacy.choices(guild_id)
            attached = _Attached(GuildAdmission(settings.consent_mode, choices))
            previous = self._attached.get(guild_id)
            if previous is not None:  # a session that never reached release: keep its nickname to restore
                previous.admission.unsubscribe_all()
                attached.original_nick, attached.set_nick = previous.original_nick, previous.set_nick
            self._attached[guild_id] = attached
            if on_change is not None:
                attached.admission.subscribe(on_change)
            return attached.admission

    async def status(self, guild_id: int, user_id: int) -> ConsentStatus:
        settings = await self._db.guilds.get(guild_id)
        choice = await self._db.privacy.status(guild_id, user_id)
        return self._status(settings.consent_mode, choice)

    async def opt_out(self, guild_id: int, user_id: int) -> ConsentStatus:
        return await self._choose(guild_id, user_id, False)

    async def opt_in(self, guild_id: int, user_id: int) -> ConsentStatus:
        return await self._choose(guild_id, user_id, True)

    async def _choose(self, guild_id: int, user_id: int, opted_in: bool) -> ConsentStatus:
        async with self._lock(guild_id):
            await self._db.privacy.set_opt(guild_id, user_id, opted_in, at=self._clock())
            attached = self._attached.get(guild_id)
            if attached is not None:
                attached.admission.update(user_id=user_id, choice=opted_in)
        settings = await self._db.guilds.get(guild_id)
        return self._status(settings.consent_mode, opted_in)

    async def set_consent_mode(self, guild_id: int, mode: ConsentMode) -> GuildSettings:
        async with self._lock(guild_id):
            settings = await self._db.guilds.update(guild_id, consent_mode=mode)
            attached = self._attached.get(guild_id)
            if attached is not None:
                attached.admission.update(consent_mode=mode)
        if attached is not None:
            await self._post_notice(guild_id)  # who is heard changed: tell the channel again
        return settings

    async def set_retention(self, guild_id: int, days: int) -> int:
        """Keep the guild's text for ``days``; what is already older goes now. Returns that count."""
        await self._db.guilds.update(guild_id, retention_days=days)
        now = self._clock()
        if self._captions is not None:
            # Older caption messages go now too, as far as the budget allows; the sweep does the rest.
            await self._captions.expire(guild_id, now - dt.timedelta(days=days), budget=self._captions.budget)
        return await purge_guild(self._db, guild_id, now)

    @staticmethod
    def _status(consent_mode: ConsentMode, choice: bool | None) -> ConsentStatus:
        heard = choice if choice is not None else heard_by_default(consent_mode)
        return ConsentStatus(heard=heard, choice=choice, consent_mode=consent_mode)

    # joining and leaving voice --------------------------------------------------------------

    async def announce(self, guild: discord.Guild, voice_mention: str, notify: Notify) -> None:
        """Post the privacy notice and mark the nickname; call after ``admission`` and before any
        audio is read. Raises ``NoticeNotPostedError`` when the notice could not be posted."""
        attached = self._attached.get(guild.id)
        if attached is None:
            return
        attached.notify = notify
        attached.voice_mention = voice_mention
        await self._post_notice(guild.id, required=True)
        await self._mark_listening(guild, attached)

    async def release(self, guild: discord.Guild) -> None:
        """The voice session ended: drop the cache and restore the nickname."""
        async with self._lock(guild.id):
            attached = self._attached.pop(guild.id, None)
        if attached is not None:
            attached.admission.unsubscribe_all()
            await self._restore_nick(guild, attached)

    async def _post_notice(self, guild_id: int, *, required: bool = False) -> None:
        attached = self._attached.get(guild_id)
        if attached is None or attached.notify is None:
            return
        settings = await self._db.guilds.get(guild_id)
        text = notice_text(voice_mention=attached.voice_mention, consent_mode=settings.consent_mode,
                           retention_days=settings.retention_days, stt_host=self.stt_host,
                           captions_channel_id=settings.captions_channel_id)
        try:
            await attached.notify(text)
        except discord.HTTPException as error:
            log.warning("Guild %s: could not post the privacy notice: %s", guild_id, error)
            if required:
                raise NoticeNotPostedError(
                    "I couldn't post my privacy notice in this server's text channel"
                    + (" (I'm missing a permission there)" if isinstance(error, discord.Forbidden) else "")
                    + ", so I'm not listening. Check my permissions there, or choose another channel with "
                    "/admin settings text-channel.") from error

    async def _mark_listening(self, guild: discord.Guild, attached: _Attached) -> None:
        me = guild.me
        if not me.guild_permissions.change_nickname:
            log.info("Guild %s: no Change Nickname permission; nickname left as is", guild.id)
            return
        original = me.nick
        if original is not None and original.endswith(LISTENING_SUFFIX):
            original = plain_name(original) if plain_name(original) != me.name else None
        nick = listening_nick(original or me.name)
        try:
            await me.edit(nick=nick)
        except discord.HTTPException as error:
            log.info("Guild %s: could not change my nickname: %s", guild.id, error)
            return
        attached.original_nick, attached.set_nick = original, nick

    async def _restore_nick(self, guild: discord.Guild, attached: _Attached) -> None:
        # Without the privileged members intent discord.py's cache never sees our own nickname
        # change (GUILD_MEMBER_UPDATE needs it), so what we set is tracked here, not read back.
        me = guild.me
        if attached.set_nick is None or me is None:
            return
        try:
            await me.edit(nick=attached.original_nick)
        except discord.HTTPException as error:
            log.info("Guild %s: could not restore my nickname: %s", guild.id, error)

    # export and erasure ---------------------------------------------------------------------

    async def forget(self, guild_id: int, user_id: int, *, forget_choice: bool) -> Forgotten:
        """Delete what the member said in the guild (stored turns, and their lines in caption
        messages with the bot's answers to them) and, if asked, their recorded choice."""
        removed = await self._db.turns.delete_for_speaker(guild_id, user_id)
        captions = CaptionsErased()
        if self._captions is not None:
            captions = await self._captions.forget(guild_id, user_id)
        choice_removed = False
        if forget_choice:
            async with self._lock(guild_id):
                choice_removed = await self._db.privacy.forget(guild_id, user_id)
                attached = self._attached.get(guild_id)
                if attached is not None:
                    attached.admission.update(user_id=user_id, forget=True)
        status = await self.status(guild_id, user_id)
        return Forgotten(turns=removed, choice_removed=choice_removed, heard_now=status.heard, captions=captions)

    async def export(self, guild_id: int, user_id: int, *, limit_bytes: int | None = None) -> tuple[int, bytes]:
        """Everything the member said in the guild, as JSON: (number of turns, file bytes)."""
        turns = await self._db.turns.for_speaker(guild_id, user_id)
        settings = await self._db.guilds.get(guild_id)
        document = {
            "guild_id": str(guild_id),
            "user_id": str(user_id),
            "exported_at": self._clock().isoformat(),
            "retention_days": settings.retention_days,
            "note": "Transcripts of what you said near Voxcord in this server. No audio is ever stored.",
            "turns": [
                {"at": t.created_at.isoformat(), "name": t.speaker_name, "role": t.role, "text": t.text}
                for t in turns
            ],
        }
        data = json.dumps(document, ensure_ascii=False, indent=2).encode()
        if limit_bytes is not None and len(data) > limit_bytes:
            raise ExportTooLargeError(
                "Your export is larger than Discord lets me upload here. Ask an admin of the bot for it.")
        return len(turns), data
