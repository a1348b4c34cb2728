"""One guild's conversation: listening and answering, wired on one event bus.

``Listening`` turns each member's utterances into turns (streaming STT, addressed?);
``Answering`` speaks one reply at a time; ``InterruptionPolicy`` decides who may pause or stop it
and withdraws a reply whose question was not finished; the bookkeeping subscribers
(timings, usage, stored turns) follow both through the bus, as can anything else: subscribe to
``GuildConversation.events``. Everything here is per guild; the engine builds it on /join.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

from bot.audio.utterances import Event
from bot.conversation import events
from bot.conversation.answering import NO_VOICE_HINT, Answering
from bot.conversation.bookkeeping import TurnJournal, record_timings, record_usage
from bot.conversation.context import ConversationStore
from bot.conversation.interruption import Eligibility, InterruptionPolicy
from bot.conversation.listening import Listening
from bot.conversation.ports import Notify, ReplyPlayer, Roster, TurnMeter, UnmeteredTurns
from bot.conversation.timings import TimingsLog
from bot.conversation.turn import DEFAULT_LIMITS, Background, ConversationLimits
from bot.conversation.turn_detection import DEFAULT_TURN_DETECTION, TurnDetection
from bot.mistral import ChatModel, SpeechSynthesizer, StreamingTranscriber
from bot.store import Database

__all__ = [
    "DEFAULT_LIMITS", "NO_VOICE_HINT", "ConversationLimits", "GuildConversation", "Notify", "ReplyPlayer",
    "Roster", "TurnMeter",
]


class GuildConversation:
    def __init__(
        self,
        *,
        guild_id: int,
        database: Database,
        transcriber: StreamingTranscriber,
        chat: ChatModel,
        synthesizer: SpeechSynthesizer,
        player: ReplyPlayer,
        roster: Roster,
        notify: Notify,
        bot_name: str,
        clock: Callable[[], float],
        wall_clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        limits: ConversationLimits = DEFAULT_LIMITS,
        timings_log: TimingsLog | None = None,
        default_voice_id: str | None = None,
        meter: TurnMeter | None = None,
        turn_detection: TurnDetection = DEFAULT_TURN_DETECTION,
        bus: events.EventBus | None = None,
    ) -> None:
        self.guild_id = guild_id
        self.events = bus if bus is not None else events.EventBus()
        self.timings = timings_log if timings_log is not None else TimingsLog()
        self._background = Background()
        store = self._store = ConversationStore(
            database, guild_id, history_turns=limits.history_turns, history_chars=limits.history_chars
        )
        journal = TurnJournal(store, self._background, guild_id=guild_id, bot_name=bot_name, wall_clock=wall_clock)
        journal.attach(self.events)
        record_timings(self.events, self.timings)
        record_usage(self.events, meter or UnmeteredTurns(), self._background)
        self.answering = Answering(
            guild_id=guild_id, bus=self.events, store=store, chat=chat, synthesizer=synthesizer, player=player,
            questions=journal, notify=notify, bot_name=bot_name, clock=clock, limits=limits,
            background=self._background, turn_detection=turn_detection, default_voice_id=default_voice_id,
        )
        meter = meter or UnmeteredTurns()
        self.listening = Listening(
            guild_id=guild_id, bus=self.events, database=database, store=store, transcriber=transcriber,
            roster=roster, meter=meter, notify=notify, bot_name=bot_name, clock=clock,
            answerer=self.answering, turn_detection=turn_detection,
        )
        self.interruptions = InterruptionPolicy(
            bus=self.events, reply=self.answering,
            eligibility=lambda: Eligibility(self.listening.addressing, roster.humans_in_channel()),
            rate_limited=lambda user_id: meter.rate_limited(guild_id, user_id),
            on_withdrawn=self.listening.carry, onset_grace=turn_detection.onset_grace,
        )
        self.listening.gate = self.interruptions

    def start(self) -> None:
        self._background.spawn(self._store.warm())  # the first reply's context, from memory
        self.answering.start()

    async def stop(self) -> None:
        """Stop listening and answering; return once what was heard and used is stored."""
        self.interruptions.stop()
        await asyncio.gather(self.answering.stop(), self.listening.stop())
        await self._background.drain()

    def on_heard(self, user_id: int, event: Event) -> None:
        """Hearing's consumer: one member's utterance events, in order."""
        self.listening.on_heard(user_id, event)
