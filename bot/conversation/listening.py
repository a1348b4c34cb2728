"""Listening: utterances → streaming STT → addressed? → a turn for answering.

Each member's utterance streams to Voxtral while they talk (one transcription per utterance, or
per server turn), once the budget allows it; the session is biased toward the names said here
(the bot's, the wake word, the members', the guild's vocabulary) and told the guild's language.
The finished transcript becomes a turn only if it has words, was addressed to the bot and is not
a backchannel said over it; a turn counts against the voice-turn limits only then.

With the server's turn detection (``TurnDetection.server``) the end of a turn is the server's:
silence is streamed in real time through pauses (Discord sends nothing in silence, and the server
measures silence in the audio it gets). A finished-looking sentence and a pause (or else
``turn.eager_end``) hands answering a provisional turn to prepare; more speech or ``turn.resume``
withdraws it, ``turn.end`` confirms it. Speech after a ``turn.end`` starts the next transcription.

Never a fragment: when a member goes on talking before the reply to what they said was heard,
that reply is withdrawn (``InterruptionPolicy``) or their still-unfinished transcript is held
back, and its text leads their next turn (``carry``).

Whether a transcript is addressed and within the limits, and the turn it becomes, is
``TurnAdmission``'s (turn_admission.py); when our own eager end prepares a reply, ``EarlyStart``'s
(early_start.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from bot.audio import utterances
from bot.audio.frames import loud as _loud
from bot.conversation import events
from bot.conversation.addressing import AddressingPolicy
from bot.conversation.backchannel import words_of
from bot.conversation.context import ConversationStore
from bot.conversation.early_start import EarlyStart
from bot.conversation.ports import Answerer, Notify, Roster, TurnGate, TurnMeter
from bot.conversation.timings import Trigger, TurnTimings
from bot.conversation.transcription import Transcription, made
from bot.conversation.turn import PendingTurn, post
from bot.conversation.turn_admission import TurnAdmission
from bot.conversation.turn_detection import TurnDetection, session_options
from bot.mistral import MistralError, SessionOptions, StreamingTranscriber, TurnEvent
from bot.store import Database, GuildSettings

log = logging.getLogger(__name__)

TRANSCRIPTION_FAILED = "Sorry, I couldn't make out what was said: the transcription service failed."
_REFUSED_PAUSE_BYTES = 12_800  # 0.4 s of quiet audio ends a refused (undisclosed) utterance


class Listening:
    def __init__(
        self, *, guild_id: int, bus: events.EventBus, database: Database, store: ConversationStore,
        transcriber: StreamingTranscriber, roster: Roster, meter: TurnMeter, notify: Notify, bot_name: str,
        clock: Callable[[], float], answerer: Answerer, turn_detection: TurnDetection,
        gate: TurnGate | None = None,
    ) -> None:
        self._guild_id = guild_id
        self._bus = bus
        self._db = database
        self._store = store
        self._stt = transcriber
        self._roster = roster
        self._meter = meter
        self._notify = notify
        self._bot_name = bot_name
        self._clock = clock
        self._answerer = answerer
        self._turns = turn_detection
        self.gate = gate
        self._open: dict[int, Transcription] = {}  # the transcription each member's audio goes to
        self._running: dict[int, Transcription] = {}  # unfinished transcriptions, per member
        self._between: set[int] = set()  # utterance still open after a server turn.end
        self._carry: dict[int, str] = {}  # withdrawn text that leads the member's next turn
        self._transcriptions: set[asyncio.Task[None]] = set()
        self._admission = TurnAdmission(guild_id=guild_id, bus=bus, store=store, roster=roster, meter=meter,
                                        notify=notify, clock=clock)
        self._early = EarlyStart(enabled=lambda: self._server_turns, start=self._start_early)
        # The addressing rules last read from the guild's settings (the interruption policy's view).
        self.addressing = AddressingPolicy(mode="auto", wake_words=[bot_name])

    async def stop(self) -> None:
        tasks = list(self._transcriptions)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def carry(self, user_id: int, text: str) -> None:
        """``text`` (a withdrawn question) leads ``user_id``'s next turn."""
        carried = self._carry.get(user_id)
        if carried is None or not carried.endswith(text):  # withdrawn by both the policy and us
            self._carry[user_id] = f"{carried} {text}" if carried else text

    @property
    def _server_turns(self) -> bool:
        return self._turns.server is not None and self._stt.turn_detection_available

    def on_heard(self, user_id: int, event: utterances.Event) -> None:
        guild = self._guild_id
        if isinstance(event, utterances.VoiceOnset):
            self._bus.publish(events.VoiceOnset(guild_id=guild, at=event.at, user_id=user_id))
        elif isinstance(event, utterances.SpeechStarted):
            self._between.discard(user_id)
            # Published first: the interruption policy decides about a reply before we listen.
            self._bus.publish(events.SpeechStarted(guild_id=guild, at=event.detected_at, user_id=user_id,
                                                   began_at=event.at))
            self._open_transcription(user_id)
        elif isinstance(event, utterances.UtteranceAudio):
            current = self._open.get(user_id)
            if current is None and user_id in self._between and _loud(event.pcm):
                # The server ended the turn, but they went on within the same utterance.
                self._between.discard(user_id)
                now = self._clock()
                self._bus.publish(events.SpeechStarted(guild_id=guild, at=now, user_id=user_id, began_at=now))
                current = self._open_transcription(user_id)
            if current is not None:
                current.put(event.pcm)
        elif isinstance(event, utterances.UtteranceEnded):
            self._between.discard(user_id)
            self._bus.publish(events.SpeechEnded(guild_id=guild, at=event.at, user_id=user_id,
                                                 duration=event.duration, reason=event.reason))
            current = self._open.pop(user_id, None)
            if current is not None:
                current.close()

    def _open_transcription(self, user_id: int) -> Transcription:
        previous = self._open.pop(user_id, None)
        if previous is not None:
            previous.close()
        unfinished = self._running.get(user_id)
        if unfinished is not None:
            unfinished.continued = True  # its text will lead this one's
        transcription = self._open[user_id] = self._running[user_id] = Transcription(user_id)
        task = asyncio.get_running_loop().create_task(self._transcribe(transcription), name="transcribe")
        self._transcriptions.add(task)
        task.add_done_callback(self._transcriptions.discard)
        return transcription

    async def _audio(self, transcription: Transcription, timings: TurnTimings) -> AsyncIterator[bytes]:
        """The utterance's audio (``Transcription.audio``), then the transcript is being finished."""

        def voice() -> None:
            if transcription.provisional is not None:
                self._withdraw_provisional(transcription)  # they went on: not done

        try:
            async for chunk in transcription.audio(fill=self._server_turns, on_voice=voice,
                                                   on_pause=lambda: self._early.check(transcription)):
                yield chunk
        finally:
            if transcription.early_check is not None:
                transcription.early_check.cancel()
        timings.mark_once("speech_end")
        if transcription.ahead is None:
            transcription.ahead = self._store.read_ahead()  # while the transcript is being finished

    def _start_early(self, transcription: Transcription, text: str) -> None:
        task = transcription.early = asyncio.create_task(self._provisional(transcription, text, "early"),
                                                         name="early-turn")
        self._transcriptions.add(task)
        task.add_done_callback(self._transcriptions.discard)

    async def _provisional(self, transcription: Transcription, text: str, trigger: Trigger) -> None:
        try:
            if self.gate is not None and not self.gate.admits(transcription.user_id, text):
                return
            whole = self._with_carry(transcription.user_id, text, keep=True)
            transcription.provisional = await self._admission.turn(transcription, whole, provisional=True,
                                                                   trigger=trigger)
            if transcription.provisional is not None:
                self._answerer.enqueue(transcription.provisional)
        finally:
            transcription.starting = False

    async def _drain_until_pause(self, transcription: Transcription) -> None:
        quiet = 0
        while (item := await transcription.queue.get()) is not None:
            quiet = 0 if _loud(item[1]) else quiet + len(item[1])
            if quiet >= _REFUSED_PAUSE_BYTES and self._open.get(transcription.user_id) is transcription:
                del self._open[transcription.user_id]
                self._between.add(transcription.user_id)
                return

    async def _transcribe(self, transcription: Transcription) -> None:
        user_id = transcription.user_id
        timings = TurnTimings(clock=self._clock)
        try:
            await self._listen(transcription, timings)
        finally:
            if self._running.get(user_id) is transcription:
                del self._running[user_id]
            if transcription.ahead is not None:
                transcription.ahead.abandon()

    async def _listen(self, transcription: Transcription, timings: TurnTimings) -> None:
        user_id = transcription.user_id
        refusal = await self._meter.may_listen(self._guild_id, user_id)
        if refusal is not None:
            # Nothing is sent anywhere: the speech is drained and dropped, up to its first pause
            # (speech after it, in the same long utterance, asks again).
            post_notice = asyncio.ensure_future(post(self._notify, self._guild_id, refusal)) if refusal else None
            await self._drain_until_pause(transcription)
            self._admission.reject(user_id, "", "refused")
            if post_notice is not None:
                await post_notice
            return
        settings = transcription.settings = await self._db.guilds.get(self._guild_id)
        transcription.policy = self.addressing = AddressingPolicy(
            mode=settings.addressing_mode, wake_words=[w for w in (settings.wake_word, self._bot_name) if w])
        transcription.timings, transcription.language = timings, settings.language

        def partial(text: str) -> None:
            transcription.partial = text
            self._early.check(transcription)  # the pause may be long enough already
            self._bus.publish(events.TranscriptPartial(guild_id=self._guild_id, at=self._clock(), user_id=user_id,
                                                       text=text))

        def detected(code: str) -> None:
            transcription.language = settings.language or code

        async def turn_event(event: TurnEvent) -> None:
            await self._on_turn_event(transcription, event)

        try:
            transcript = await self._stt.transcribe(
                self._audio(transcription, timings), on_partial=partial, on_language=detected,
                on_turn=turn_event if self._server_turns else None, options=self._options(settings))
        except BaseException as error:
            await made(transcription.early)  # a turn it makes is withdrawn with the rest
            self._withdraw_provisional(transcription)
            if not isinstance(error, MistralError):
                raise
            self._admission.reject(user_id, "", "transcription_failed")
            log.warning("Guild %s: transcription failed: %s", self._guild_id, error)
            await post(self._notify, self._guild_id, TRANSCRIPTION_FAILED)
            return
        if transcript.end_reason in ("threshold", "timeout"):
            self._end(transcription)
        timings.mark_once("speech_end")  # the server's turn.end stopped the audio before its end
        timings.mark("transcript_final")
        self._bus.publish(events.TranscriptFinal(
            guild_id=self._guild_id, at=self._clock(), user_id=user_id, text=transcript.text,
            audio_seconds=transcript.audio_seconds, source=transcript.source))
        self._bus.publish(events.UsageIncurred(guild_id=self._guild_id, at=self._clock(), user_id=user_id,
                                               kind="stt_seconds", quantity=transcript.audio_seconds))
        transcription.language = settings.language or transcript.language or transcription.language
        await made(transcription.early)  # else its turn, enqueued after this, would wait forever
        await self._conclude(transcription, transcript.text.strip())

    async def _conclude(self, transcription: Transcription, text: str) -> None:
        user_id = transcription.user_id
        if transcription.settled:
            return  # confirmed on turn.end (with the carry it answered)
        provisional, transcription.provisional = transcription.provisional, None
        if transcription.continued and words_of(text):
            # They went on talking before this was answered: it leads their next turn.
            self._withdraw(provisional)
            self.carry(user_id, text)
            return
        if not words_of(text) and user_id not in self._carry:
            self._withdraw(provisional)
            self._admission.reject(user_id, text, "no_words")
            return  # noise or silence: no turn (but a withdrawn question waiting is answered)
        if self.gate is not None and not self.gate.admits(user_id, text):
            self._withdraw(provisional)
            self._admission.reject(user_id, text, "backchannel")
            return
        whole = self._with_carry(user_id, text, keep=False)
        if provisional is not None and words_of(provisional.text) == words_of(whole):
            self._answerer.confirm(provisional.turn_id)  # the prepared reply may now be heard
            return
        self._withdraw(provisional)
        turn = await self._admission.turn(transcription, whole, provisional=False)
        if turn is not None and transcription.continued:
            self.carry(user_id, whole)  # they spoke again while it was being admitted
        elif turn is not None:
            self._answerer.enqueue(turn)

    async def _on_turn_event(self, transcription: Transcription, event: TurnEvent) -> None:
        if event.kind == "resume":
            self._withdraw_provisional(transcription)
        elif event.kind == "end":
            self._end(transcription)
        if event.kind == "end" and transcription.provisional is not None and not transcription.continued:
            whole = self._with_carry(transcription.user_id, event.text.strip(), keep=True)
            if words_of(whole) == words_of(transcription.provisional.text):
                # Confirmed now rather than once the final transcript arrives; the carry it
                # answers is used up now (a later withdrawal's carry leads the next turn).
                transcription.settled = True
                self._carry.pop(transcription.user_id, None)
                self._answerer.confirm(transcription.provisional.turn_id)
        elif (event.kind == "eager_end" and transcription.provisional is None and not transcription.starting
              and not transcription.continued and words_of(event.text)):
            transcription.starting = True
            await self._provisional(transcription, event.text.strip(), "eager_end")
            log.debug("Guild %s: eager end of turn at %.2f s: provisional turn %s", self._guild_id, event.time_s,
                      transcription.provisional.turn_id if transcription.provisional else None)

    def _end(self, transcription: Transcription) -> None:
        """The server ended the turn inside our utterance: from now on the member's speech is the
        next turn's (opened on their next loud packet), not lost in a queue nobody reads while
        the final transcript is awaited."""
        transcription.ended = True
        if transcription.timings is not None:
            transcription.timings.mark_once("speech_end")
        if self._open.get(transcription.user_id) is transcription:
            del self._open[transcription.user_id]
            self._between.add(transcription.user_id)
            transcription.close()

    def _with_carry(self, user_id: int, text: str, *, keep: bool) -> str:
        carried = self._carry.get(user_id) if keep else self._carry.pop(user_id, None)
        return f"{carried} {text}" if carried else text

    def _withdraw_provisional(self, transcription: Transcription) -> None:
        provisional, transcription.provisional = transcription.provisional, None
        self._withdraw(provisional)

    def _withdraw(self, provisional: PendingTurn | None) -> None:
        if provisional is not None:
            log.debug("Guild %s: provisional turn %s withdrawn", self._guild_id, provisional.turn_id)
            self._answerer.withdraw(provisional.user_id)

    def _options(self, settings: GuildSettings) -> SessionOptions:
        return session_options(settings, self._bot_name, self._roster.names_in_channel(),
                               self._turns if self._server_turns else None)
