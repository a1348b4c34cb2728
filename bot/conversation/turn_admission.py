"""Turn admission: whether a member's transcript becomes a turn, and the turn it becomes.

A transcript becomes a turn only if it was addressed to the bot and the guild's limits let it
reach the chat model (asked once per transcription: a turn counts against the voice-turn limits
only then). What becomes no turn is published as ``TurnRejected`` with its reason; listening
rejects through here too (no words, a backchannel, a failed transcription).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bot.conversation import events
from bot.conversation.context import ConversationStore
from bot.conversation.ports import Notify, Roster, TurnMeter
from bot.conversation.timings import Trigger, TurnTimings
from bot.conversation.transcription import Transcription
from bot.conversation.turn import PendingTurn, post


class TurnAdmission:
    def __init__(self, *, guild_id: int, bus: events.EventBus, store: ConversationStore, roster: Roster,
                 meter: TurnMeter, notify: Notify, clock: Callable[[], float]) -> None:
        self._guild_id = guild_id
        self._bus = bus
        self._store = store
        self._roster = roster
        self._meter = meter
        self._notify = notify
        self._clock = clock
        self._turn_ids = 0

    async def turn(self, transcription: Transcription, text: str, *, provisional: bool,
                   trigger: Trigger = "final") -> PendingTurn | None:
        """``text`` as the transcription's turn, or None. A provisional turn (prepared ahead of the
        end of the turn) is rejected silently: the final transcript is judged again."""
        user_id, settings, policy = transcription.user_id, transcription.settings, transcription.policy
        assert settings is not None and policy is not None and transcription.timings is not None
        name = self._roster.display_name(user_id)
        if not policy.is_addressed(text, self._roster.humans_in_channel()):
            if not provisional:
                self.reject(user_id, text, "not_addressed", name)  # kept as overheard context
            return None
        if not transcription.admitted and transcription.refusal is None:
            # A turn that reaches the chat model counts against the limits; asked once per
            # transcription. Its history is read meanwhile, not after the admit's round trips.
            if transcription.ahead is None:
                transcription.ahead = self._store.read_ahead()
            transcription.refusal = await self._meter.admit(self._guild_id, user_id)
            transcription.admitted = transcription.refusal is None
        if transcription.refusal is not None:
            if not provisional:
                self.reject(user_id, text, "refused", name)
                if transcription.refusal:
                    await post(self._notify, self._guild_id, transcription.refusal)
            return None
        self._turn_ids += 1
        ahead, transcription.ahead = transcription.ahead, None
        timings = transcription.timings
        if provisional:
            # Its own stages, from the eager end (the text it answers is the transcript so far).
            timings = TurnTimings(clock=self._clock)
            timings.mark("speech_end")
            timings.mark("transcript_final")
        timings.trigger = trigger
        return PendingTurn(turn_id=self._turn_ids, user_id=user_id, speaker_name=name, text=text,
                           timings=timings, persona=settings.persona,
                           ahead=ahead or self._store.read_ahead(), language=transcription.language,
                           confirmed=asyncio.Event() if provisional else None)

    def reject(self, user_id: int, text: str, reason: events.RejectReason, name: str | None = None) -> None:
        self._bus.publish(events.TurnRejected(
            guild_id=self._guild_id, at=self._clock(), user_id=user_id,
            speaker_name=self._roster.display_name(user_id) if name is None else name, text=text, reason=reason))
