"""One guild's conversation: utterances → streaming STT → addressed? → chat → speech.

Everything per guild: its own turn queue (one turn at a time, a short backlog), its own player,
its own failures. Nothing here knows about slash commands; the engine builds it on /join.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from bot.audio.utterances import Event, SpeechStarted, UtteranceAudio, UtteranceEnded, VoiceOnset
from bot.conversation import events
from bot.conversation.addressing import AddressingPolicy
from bot.conversation.context import ConversationStore, ReadAhead
from bot.conversation.ports import Notify, ReplyPlayer, Roster, TurnMeter, UnmeteredTurns

__all__ = ["DEFAULT_LIMITS", "ConversationLimits", "GuildConversation", "Notify", "ReplyPlayer", "Roster", "TurnMeter"]
from bot.conversation.prompt import build_messages
from bot.conversation.sentences import SentenceSplitter
from bot.conversation.speaking import ReplySpeaker, SpeechLedger
from bot.conversation.timings import TimingsLog, TurnTimings
from bot.mistral import ChatMessage, ChatModel, ChatUsage, MistralError, SpeechSynthesizer, StreamingTranscriber
from bot.store import Database, Turn, VoiceClip

log = logging.getLogger(__name__)

# A tentative onset pauses the reply; speech is confirmed (SpeechStarted) about 150-250 ms later.
# Past this without confirmation it was noise, and the reply resumes.
ONSET_GRACE_SECONDS = 0.5

NO_VOICE_HINT = "I'm speaking with the default voice: an admin can give me one with /voice set."


@dataclass(frozen=True, slots=True)
class ConversationLimits:
    history_turns: int = 20
    history_chars: int = 6000
    max_reply_tokens: int = 200
    backlog: int = 2


DEFAULT_LIMITS = ConversationLimits()


@dataclass(slots=True)
class PendingTurn:
    turn_id: int
    user_id: int
    speaker_name: str
    text: str
    timings: TurnTimings
    persona: str | None = None
    ahead: ReadAhead | None = None  # history and clip, read while the transcript was finishing
    # The user's row being written while the reply is generated; the reply's row waits for it.
    saved: asyncio.Future[Turn] | None = None
    reply_text: str = ""  # what was heard of the reply


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
        bus: events.EventBus | None = None,
    ) -> None:
        self.guild_id = guild_id
        self.events = bus if bus is not None else events.EventBus()
        self._turn_ids = 0
        self._meter = meter or UnmeteredTurns()
        self._db = database
        self._store = ConversationStore(
            database, guild_id, history_turns=limits.history_turns, history_chars=limits.history_chars
        )
        self._stt = transcriber
        self._chat = chat
        self._tts = synthesizer
        self._player = player
        self._roster = roster
        self._notify = notify
        self._bot_name = bot_name
        self._clock = clock
        self._wall_clock = wall_clock
        self._limits = limits
        self._default_voice_id = default_voice_id
        self.timings = timings_log if timings_log is not None else TimingsLog()
        self._utterances: dict[int, asyncio.Queue[bytes | None]] = {}
        self._transcriptions: set[asyncio.Task[None]] = set()
        self._turns: asyncio.Queue[PendingTurn] = asyncio.Queue(maxsize=limits.backlog)
        self._worker: asyncio.Task[None] | None = None
        self._answering: asyncio.Task[None] | None = None
        self._told_about_voice = False
        self._onset_timer: asyncio.TimerHandle | None = None
        self._bookkeeping: set[asyncio.Task[None]] = set()

    # lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run(), name=f"conversation-{self.guild_id}")

    async def stop(self) -> None:
        self._cancel_onset_timer()
        self._interrupt_reply()
        tasks = [t for t in (self._worker, *self._transcriptions) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._bookkeeping:
            await asyncio.wait(self._bookkeeping)

    # hearing --------------------------------------------------------------------------------

    def on_heard(self, user_id: int, event: Event) -> None:
        if isinstance(event, VoiceOnset):
            # 60 ms of voice: fall quiet now rather than after the 200 ms that confirm speech.
            # If it was a cough or noise, the reply carries on where it paused.
            if self._player.playing and self._onset_timer is None:
                self._player.pause()
                self._onset_timer = asyncio.get_running_loop().call_later(
                    ONSET_GRACE_SECONDS, self._resume_after_false_onset
                )
            return
        if isinstance(event, SpeechStarted):
            self.events.publish(events.SpeechStarted(
                guild_id=self.guild_id, at=event.detected_at, user_id=user_id, began_at=event.at))
            self._cancel_onset_timer()
            if self._player.playing or self._answering is not None:
                self._interrupt_reply()
            self._open_utterance(user_id)
        elif isinstance(event, UtteranceAudio):
            queue = self._utterances.get(user_id)
            if queue is not None:
                queue.put_nowait(event.pcm)
        elif isinstance(event, UtteranceEnded):
            self.events.publish(events.SpeechEnded(
                guild_id=self.guild_id, at=event.at, user_id=user_id, duration=event.duration, reason=event.reason))
            queue = self._utterances.pop(user_id, None)
            if queue is not None:
                queue.put_nowait(None)

    def _resume_after_false_onset(self) -> None:
        self._onset_timer = None
        self._player.resume()

    def _cancel_onset_timer(self) -> None:
        if self._onset_timer is not None:
            self._onset_timer.cancel()
            self._onset_timer = None

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

        refusal = await self._meter.admit(self.guild_id, user_id)
        read_context = refusal is None
        if refusal is not None:
            # Nothing is sent anywhere: the utterance is drained and dropped.
            async for _chunk in audio():
                pass
            self._reject(user_id, "", "refused")
            if refusal:
                await self._say(refusal)
            return
        def partial(text: str) -> None:
            self.events.publish(events.TranscriptPartial(
                guild_id=self.guild_id, at=self._clock(), user_id=user_id, text=text))

        # Read while the person is still talking, so the answer does not wait on the database.
        settings_read = asyncio.ensure_future(self._db.guilds.get(self.guild_id))
        try:
            transcript = await self._stt.transcribe(audio(), on_partial=partial)
        except MistralError as error:
            _abandon(settings_read, ahead)
            self._reject(user_id, "", "transcription_failed")
            log.warning("Guild %s: transcription failed: %s", self.guild_id, error)
            await self._say("Sorry, I couldn't make out what was said: the transcription service failed.")
            return
        except BaseException:
            _abandon(settings_read, ahead)
            raise
        timings.mark("transcript_final")
        self.events.publish(events.TranscriptFinal(
            guild_id=self.guild_id, at=self._clock(), user_id=user_id, text=transcript.text,
            audio_seconds=transcript.audio_seconds, source=transcript.source))
        self._usage(user_id, "stt_seconds", transcript.audio_seconds)
        self._in_background(self._meter.record(self.guild_id, user_id, "stt_seconds", transcript.audio_seconds))
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
            self._reject(user_id, text, "not_addressed", name)
            await self._store.add_turn(self._turn(user_id, name, "context", text))
            return
        self._turn_ids += 1
        turn = PendingTurn(turn_id=self._turn_ids, user_id=user_id, speaker_name=name, text=text, timings=timings,
                           persona=settings.persona, ahead=ahead)
        if self._turns.full():
            dropped = self._turns.get_nowait()  # the newest question matters most
            _abandon(None, dropped.ahead)
            log.info("Guild %s: turn backlog full, dropping %r", self.guild_id, dropped.text[:40])
            self._reject(dropped.user_id, dropped.text, "backlog_full", dropped.speaker_name)
        self._turns.put_nowait(turn)
        self.events.publish(events.TurnAccepted(
            guild_id=self.guild_id, at=self._clock(), turn_id=turn.turn_id, user_id=user_id, speaker_name=name,
            text=text))

    # answering ------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            turn = await self._turns.get()
            self.events.publish(events.ReplyStarted(
                guild_id=self.guild_id, at=self._clock(), turn_id=turn.turn_id, user_id=turn.user_id))
            outcome: events.ReplyOutcome = "failed"
            self._answering = asyncio.current_task()
            answer = asyncio.get_running_loop().create_task(self._answer(turn), name="answer")
            self._answering = answer
            try:
                await answer
                outcome = "spoken"
            except asyncio.CancelledError:
                outcome = "interrupted"
                # Cancelling the worker while it awaits `answer` cancels `answer` too, so
                # answer.cancelled() cannot tell a stop from a barge-in; our own count can.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # we are being stopped, not interrupted
            except MistralError as error:
                log.warning("Guild %s: turn failed: %s", self.guild_id, error)
                await self._say("Sorry, I couldn't answer that just now (the AI service is unavailable). "
                                "I'm still listening.")
            except Exception:
                log.exception("Guild %s: turn failed", self.guild_id)
                await self._say("Sorry, something went wrong answering that. I'm still listening.")
            finally:
                self._answering = None
                self.timings.add(turn.timings)
                self.events.publish(events.ReplyFinished(
                    guild_id=self.guild_id, at=self._clock(), turn_id=turn.turn_id, user_id=turn.user_id,
                    speaker_name=turn.speaker_name, question=turn.text, text=turn.reply_text, outcome=outcome,
                    timings=turn.timings))

    async def _answer(self, turn: PendingTurn) -> None:
        # Usually read while the transcript was being finished: nothing but the request itself
        # stands between the transcript and the chat request.
        ahead, turn.ahead = turn.ahead, None
        context = await self._store.context(ahead)
        history, clip = context.history, context.clip
        messages = [
            ChatMessage(role=m["role"], content=m["content"])
            for m in build_messages(
                persona=turn.persona, history=history, speaker_name=turn.speaker_name, text=turn.text,
                max_turns=self._limits.history_turns, max_chars=self._limits.history_chars,
                bot_name=self._bot_name,
            )
        ]
        # Written while the model thinks; the first sentence waits for the commit (a few ms against
        # the model's hundreds), so a crash once the reply is being spoken still keeps the question.
        turn.saved = asyncio.ensure_future(
            self._store.add_turn(self._turn(turn.user_id, turn.speaker_name, "user", turn.text))
        )
        try:
            await self._speak_reply(turn, messages, clip)
        finally:
            await asyncio.shield(self._settle_user_turn(turn))

    async def _speak_reply(self, turn: PendingTurn, messages: list[ChatMessage], clip: VoiceClip | None) -> None:
        if clip is None and not self._told_about_voice:
            self._told_about_voice = True
            self._in_background(self._say(NO_VOICE_HINT))  # a REST round trip; the reply need not wait
        speaker = ReplySpeaker(
            self._tts, self._player,
            ref_audio=clip.audio if clip else None,
            voice_id=None if clip else self._default_voice_id,
            clock=self._clock,
        )
        self._player.begin_reply()  # FFmpeg starts while the model is still thinking
        try:
            ledger = await speaker.speak(self._sentences(turn, messages))
            turn.timings.mark_at("first_tts_audio", ledger.first_audio_at)
            self._player.finish()
            await self._player.wait_done()
            turn.timings.mark_at("first_packet_sent", self._player.first_packet_sent_at)
            turn.timings.mark("done")
        except asyncio.CancelledError:
            self._player.interrupt()
            # Not interrupt()'s return value: a barge-in has usually stopped the player already
            # (_interrupt_reply), and a second interrupt() reports 0 s played.
            played = self._player.played_seconds
            turn.reply_text = speaker.ledger.heard_text(played)
            self.events.publish(events.ReplyInterrupted(
                guild_id=self.guild_id, at=self._clock(), turn_id=turn.turn_id, user_id=turn.user_id,
                heard_text=turn.reply_text, played_seconds=played, spoken_seconds=speaker.ledger.seconds))
            await asyncio.shield(self._record_reply(turn, speaker.ledger, interrupted=True, played=played))
            raise
        except BaseException:
            self._player.interrupt()
            raise
        finally:
            await asyncio.shield(self._record_speech_usage(speaker.ledger))
        turn.reply_text = ledger.text()
        await self._record_reply(turn, ledger, interrupted=False, played=ledger.seconds)

    async def _record_speech_usage(self, ledger: SpeechLedger) -> None:
        if ledger.characters:
            self._usage(None, "tts_characters", ledger.characters)
            await self._meter.record(self.guild_id, None, "tts_characters", ledger.characters)

    async def _sentences(self, turn: PendingTurn, messages: list[ChatMessage]) -> AsyncIterator[str]:
        splitter = SentenceSplitter()
        index = 0

        def written(sentence: str) -> None:
            nonlocal index
            self.events.publish(events.ReplySentence(
                guild_id=self.guild_id, at=self._clock(), turn_id=turn.turn_id, index=index, text=sentence))
            index += 1

        stream = self._chat.stream(messages, max_tokens=self._limits.max_reply_tokens)
        try:
            async for delta in stream:
                turn.timings.mark_once("first_token")
                for sentence in splitter.feed(delta):
                    turn.timings.mark_once("first_sentence")
                    await self._settle_user_turn(turn)
                    written(sentence)
                    yield sentence
            for sentence in splitter.flush():
                turn.timings.mark_once("first_sentence")
                await self._settle_user_turn(turn)
                written(sentence)
                yield sentence
        finally:
            await stream.aclose()
            if stream.usage is not None:
                await asyncio.shield(self._record_chat_usage(turn.user_id, stream.usage))

    async def _record_chat_usage(self, user_id: int, usage: ChatUsage) -> None:
        self._usage(user_id, "chat_input_tokens", usage.input_tokens)
        self._usage(user_id, "chat_output_tokens", usage.output_tokens)
        await self._meter.record(self.guild_id, user_id, "chat_input_tokens", usage.input_tokens)
        await self._meter.record(self.guild_id, user_id, "chat_output_tokens", usage.output_tokens)

    async def _record_reply(self, turn: PendingTurn, ledger: SpeechLedger, *, interrupted: bool, played: float) -> None:
        text = ledger.heard_text(played) if interrupted else ledger.text()
        # The question's row first, so history keeps question and answer in order.
        await self._settle_user_turn(turn)
        if text:
            await self._store.add_turn(self._turn(None, self._bot_name, "assistant", text, interrupted=interrupted))

    async def _settle_user_turn(self, turn: PendingTurn) -> None:
        saved, turn.saved = turn.saved, None
        if saved is None:
            return
        try:
            await saved
        except Exception:
            # The reply was (being) spoken regardless; losing the question's row is logged loudly.
            log.exception("Guild %s: could not store the user's turn", self.guild_id)

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Bookkeeping that must not delay the reply (usage rows); stop() waits for it."""
        task = asyncio.get_running_loop().create_task(work, name="conversation-bookkeeping")
        self._bookkeeping.add(task)
        task.add_done_callback(self._bookkeeping.discard)

    def _interrupt_reply(self) -> None:
        """Barge-in: stop the sound now and cancel the reply; its task records what was heard."""
        answering = self._answering
        if answering is not None and not answering.done():
            self._player.interrupt()
            answering.cancel()

    # helpers --------------------------------------------------------------------------------

    def _reject(self, user_id: int, text: str, reason: events.RejectReason, name: str | None = None) -> None:
        if name is None:
            name = self._roster.display_name(user_id)
        self.events.publish(events.TurnRejected(
            guild_id=self.guild_id, at=self._clock(), user_id=user_id, speaker_name=name, text=text, reason=reason))

    def _usage(self, user_id: int | None, kind: events.UsageKind, quantity: float) -> None:
        self.events.publish(events.UsageIncurred(
            guild_id=self.guild_id, at=self._clock(), user_id=user_id, kind=kind, quantity=quantity))

    def _turn(self, user_id: int | None, name: str, role: str, text: str, *, interrupted: bool = False) -> Turn:
        return Turn(id=None, guild_id=self.guild_id, speaker_id=user_id, speaker_name=name, role=role,
                    text=text, created_at=self._wall_clock(), interrupted=interrupted)

    async def _say(self, message: str) -> None:
        try:
            await self._notify(message)
        except Exception:
            log.warning("Guild %s: could not post to the text channel", self.guild_id)


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
