"""Listening: utterances → streaming STT → addressed? → a turn for answering.

Each member's utterance streams to Voxtral while they talk (one transcription task per
utterance), after the meter admits it. The finished transcript becomes a turn only if it has
words and was addressed to the bot; everything it notices is published on the guild's bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from bot.audio import utterances
from bot.conversation import events
from bot.conversation.addressing import AddressingPolicy
from bot.conversation.context import ConversationStore, ReadAhead
from bot.conversation.ports import Notify, Roster, TurnMeter
from bot.conversation.timings import TurnTimings
from bot.conversation.turn import PendingTurn, post
from bot.mistral import MistralError, StreamingTranscriber
from bot.store import Database

log = logging.getLogger(__name__)

TRANSCRIPTION_FAILED = "Sorry, I couldn't make out what was said: the transcription service failed."


class Listening:
    def __init__(
        self, *, guild_id: int, bus: events.EventBus, database: Database, store: ConversationStore,
        transcriber: StreamingTranscriber, roster: Roster, meter: TurnMeter, notify: Notify, bot_name: str,
        clock: Callable[[], float], on_turn: Callable[[PendingTurn], None],
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
        self._on_turn = on_turn
        self._utterances: dict[int, asyncio.Queue[bytes | None]] = {}
        self._transcriptions: set[asyncio.Task[None]] = set()
        self._turn_ids = 0

    async def stop(self) -> None:
        tasks = list(self._transcriptions)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def on_heard(self, user_id: int, event: utterances.Event) -> None:
        guild = self._guild_id
        if isinstance(event, utterances.VoiceOnset):
            self._bus.publish(events.VoiceOnset(guild_id=guild, at=event.at, user_id=user_id))
        elif isinstance(event, utterances.SpeechStarted):
            # Published first: answering stops a reply being spoken (barge-in) before we listen.
            self._bus.publish(events.SpeechStarted(guild_id=guild, at=event.detected_at, user_id=user_id,
                                                   began_at=event.at))
            self._open_utterance(user_id)
        elif isinstance(event, utterances.UtteranceAudio):
            queue = self._utterances.get(user_id)
            if queue is not None:
                queue.put_nowait(event.pcm)
        elif isinstance(event, utterances.UtteranceEnded):
            self._bus.publish(events.SpeechEnded(guild_id=guild, at=event.at, user_id=user_id,
                                                 duration=event.duration, reason=event.reason))
            queue = self._utterances.pop(user_id, None)
            if queue is not None:
                queue.put_nowait(None)

    def _open_utterance(self, user_id: int) -> None:
        previous = self._utterances.pop(user_id, None)
        if previous is not None:
            previous.put_nowait(None)
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._utterances[user_id] = queue
        task = asyncio.get_running_loop().create_task(self._transcribe(user_id, queue), name="transcribe")
        self._transcriptions.add(task)
        task.add_done_callback(self._transcriptions.discard)

    async def _transcribe(self, user_id: int, queue: asyncio.Queue[bytes | None]) -> None:
        timings = TurnTimings(clock=self._clock)
        ahead: ReadAhead | None = None

        async def audio() -> AsyncIterator[bytes]:
            nonlocal ahead
            # Streamed to Voxtral while the person is still talking.
            while (chunk := await queue.get()) is not None:
                yield chunk
            timings.mark("speech_end")
            if read_context:
                ahead = self._store.read_ahead()  # while the transcript is being finished

        def partial(text: str) -> None:
            self._bus.publish(events.TranscriptPartial(guild_id=self._guild_id, at=self._clock(), user_id=user_id,
                                                       text=text))

        refusal = await self._meter.admit(self._guild_id, user_id)
        read_context = refusal is None
        if refusal is not None:
            # Nothing is sent anywhere: the utterance is drained and dropped.
            async for _chunk in audio():
                pass
            self._reject(user_id, "", "refused")
            if refusal:
                await post(self._notify, self._guild_id, refusal)
            return
        # Read while the person is still talking, so the answer does not wait on the database.
        settings_read = asyncio.ensure_future(self._db.guilds.get(self._guild_id))
        try:
            transcript = await self._stt.transcribe(audio(), on_partial=partial)
        except MistralError as error:
            _abandon(settings_read, ahead)
            self._reject(user_id, "", "transcription_failed")
            log.warning("Guild %s: transcription failed: %s", self._guild_id, error)
            await post(self._notify, self._guild_id, TRANSCRIPTION_FAILED)
            return
        except BaseException:
            _abandon(settings_read, ahead)
            raise
        timings.mark("transcript_final")
        self._bus.publish(events.TranscriptFinal(
            guild_id=self._guild_id, at=self._clock(), user_id=user_id, text=transcript.text,
            audio_seconds=transcript.audio_seconds, source=transcript.source))
        self._bus.publish(events.UsageIncurred(guild_id=self._guild_id, at=self._clock(), user_id=user_id,
                                               kind="stt_seconds", quantity=transcript.audio_seconds))
        text = transcript.text.strip()
        if not _has_words(text):
            _abandon(settings_read, ahead)
            self._reject(user_id, text, "no_words")
            return  # noise or silence: no turn
        name = self._roster.display_name(user_id)
        try:
            settings = await settings_read
        except BaseException:
            _abandon(None, ahead)
            raise
        policy = AddressingPolicy(
            mode=settings.addressing_mode, wake_words=[w for w in (settings.wake_word, self._bot_name) if w]
        )
        if not policy.is_addressed(text, self._roster.humans_in_channel()):
            _abandon(None, ahead)
            self._reject(user_id, text, "not_addressed", name)  # kept as overheard context
            return
        self._turn_ids += 1
        self._on_turn(PendingTurn(turn_id=self._turn_ids, user_id=user_id, speaker_name=name, text=text,
                                  timings=timings, persona=settings.persona, ahead=ahead))

    def _reject(self, user_id: int, text: str, reason: events.RejectReason, name: str | None = None) -> None:
        self._bus.publish(events.TurnRejected(
            guild_id=self._guild_id, at=self._clock(), user_id=user_id,
            speaker_name=self._roster.display_name(user_id) if name is None else name, text=text, reason=reason))


def _abandon(read: asyncio.Future[Any] | None, ahead: ReadAhead | None) -> None:
    """Drop reads nobody will await: cancel them, or mark a finished one's failure as seen."""
    if read is not None:
        if not read.done():
            read.cancel()
        elif not read.cancelled():
            read.exception()
    if ahead is not None:
        ahead.abandon()


def _has_words(text: str) -> bool:
    return any(ch.isalnum() for ch in text)
