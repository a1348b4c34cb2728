"""Answering: a turn → chat → sentences → speech, one turn at a time, interruptible.

Accepted turns wait in a short backlog (the newest question matters most: the oldest waiting one
is dropped). Each reply streams from the chat model sentence by sentence into ``ReplySpeaker``.
Who may pause or stop it is the ``InterruptionPolicy``'s decision (bot/conversation/interruption.py);
answering offers it the handles (``pause``, ``resume``, ``interrupt``, ``withdraw``).

A provisional turn (a server's eager end of turn) is answered at once, chat and speech, but its
audio is held (``_HeldAudio``) until the turn is confirmed; withdrawn (the member went on), it is
cancelled unheard. Every reply is heard only once its question is stored (a crash while it is
heard keeps the question); its speech is requested and encoded meanwhile. What was heard, and
the turn's use, is published; bookkeeping subscribers store it, and the turn ends only once
they have.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable

from bot.audio.frames import S16LE, SampleFormat
from bot.audio.ogg_opus import OpusPages
from bot.conversation import events
from bot.conversation.context import ConversationStore
from bot.conversation.ports import Notify, QuestionLog, ReplyPlayer
from bot.conversation.prompt import build_messages
from bot.conversation.sentences import SentenceSplitter
from bot.conversation.speaking import ReplySpeaker
from bot.conversation.turn import Background, ConversationLimits, PendingTurn, post
from bot.conversation.turn_detection import TurnDetection
from bot.mistral import ChatMessage, ChatModel, MistralError, SpeechSynthesizer
from bot.store import VoiceClip

log = logging.getLogger(__name__)

NO_VOICE_HINT = "I'm speaking with the default voice: an admin can give me one with /admin voice set."
SERVICE_FAILED = "Sorry, I couldn't answer that just now (the AI service is unavailable). I'm still listening."
TURN_FAILED = "Sorry, something went wrong answering that. I'm still listening."


class _HeldAudio:
    """The player as ``ReplySpeaker`` feeds it. A reply is begun held until ``open`` (its
    question is stored and, a provisional turn's, the turn confirmed): its speech is encoded and
    buffered as it comes, and heard once open, at once if enough is buffered by then; a reply
    opened before its speech comes (the usual case) begins unheld.
    ``started`` once audio went through an open reply (it can no longer be withdrawn unheard)."""

    def __init__(self, player: ReplyPlayer) -> None:
        self._player = player
        self._opened = False
        self._begun = False
        self._fed = False
        self.started = False

    @property
    def begun(self) -> bool:
        return self._begun

    def begin(self) -> None:
        """Spawn the reply's FFmpeg (once), held unless already open."""
        if not self._begun:
            self._begun = True
            self._player.begin_reply(held=not self._opened)

    def open(self) -> None:
        if self._opened:
            return
        self._opened = True
        if self._begun:
            self._player.release()
        self.started = self._fed

    def feed(self, pcm: bytes, sample_format: SampleFormat = S16LE) -> None:
        self.begin()
        self._player.feed(pcm, sample_format)
        self._fed = True
        self.started = self._opened

    def feed_pages(self, pages: OpusPages) -> None:
        self.begin()
        self._player.feed_pages(pages)
        self._fed = True
        self.started = self._opened


class Answering:
    def __init__(
        self, *, guild_id: int, bus: events.EventBus, store: ConversationStore, chat: ChatModel,
        synthesizer: SpeechSynthesizer, player: ReplyPlayer, questions: QuestionLog, notify: Notify, bot_name: str,
        clock: Callable[[], float], limits: ConversationLimits, background: Background,
        turn_detection: TurnDetection, default_voice_id: str | None = None,
    ) -> None:
        self._guild_id = guild_id
        self._bus = bus
        self._store = store
        self._chat = chat
        self._tts = synthesizer
        self._player = player
        self._questions = questions
        self._notify = notify
        self._bot_name = bot_name
        self._clock = clock
        self._limits = limits
        self._background = background
        self._turn_detection = turn_detection
        self._default_voice_id = default_voice_id
        self._turns: asyncio.Queue[PendingTurn] = asyncio.Queue(maxsize=limits.backlog)
        self._worker: asyncio.Task[None] | None = None
        self._answering: asyncio.Future[None] | None = None
        self._told_about_voice = False
        self._notices = Background()  # posts that no turn waits for
        self._current: PendingTurn | None = None
        self._audio: _HeldAudio | None = None
        self._withdrawn: int | None = None  # the turn id being withdrawn (not interrupted)

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run(), name=f"answering-{self._guild_id}")

    async def stop(self) -> None:
        self.interrupt()
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            await asyncio.wait({worker})
        await self._notices.drain()

    def enqueue(self, turn: PendingTurn) -> None:
        if self._turns.full():
            dropped = self._turns.get_nowait()  # the newest question matters most
            if dropped.ahead is not None:
                dropped.ahead.abandon()
            log.info("Guild %s: turn backlog full, dropping %r", self._guild_id, dropped.text[:40])
            self._bus.publish(events.TurnRejected(
                guild_id=self._guild_id, at=self._clock(), user_id=dropped.user_id,
                speaker_name=dropped.speaker_name, text=dropped.text, reason="backlog_full"))
        self._turns.put_nowait(turn)
        self._bus.publish(events.TurnAccepted(
            guild_id=self._guild_id, at=self._clock(), turn_id=turn.turn_id, user_id=turn.user_id,
            speaker_name=turn.speaker_name, text=turn.text))

    # what the interruption policy drives ----------------------------------------------------

    @property
    def speaking(self) -> bool:
        """A reply is being written or spoken."""
        return self._answering is not None and not self._answering.done()

    @property
    def answering_user(self) -> int | None:
        return self._current.user_id if self._current is not None and self.speaking else None

    @property
    def audio_started(self) -> bool:
        """Some of the reply was heard: its first packet went out. Speech handed to the player
        but still in the prebuffer (~60 ms) was heard by nobody: the reply can still be withdrawn
        and the member's next words join their question (issue 12: "before the reply's first
        audio, the two parts become one turn")."""
        audio = self._audio
        if audio is None or not audio.started:
            return False
        return not self._player.playing or self._player.first_packet_sent_at is not None

    def pause(self) -> None:
        self._player.pause()

    def resume(self) -> None:
        self._player.resume()

    def interrupt(self) -> None:
        """Stop the sound now and cancel the reply; it publishes what was heard."""
        answering = self._answering
        if answering is not None and not answering.done():
            self._player.interrupt()
            answering.cancel()

    def withdraw(self, user_id: int) -> str | None:
        """Cancel, unheard, the reply to ``user_id`` and their turns still waiting; return the
        questions' text (joined), or None when there was nothing to withdraw."""
        texts = []
        current, answering = self._current, self._answering
        if (current is not None and current.user_id == user_id and answering is not None and not answering.done()
                and not self.audio_started):
            self._withdrawn = current.turn_id
            texts.append(current.text)
            self._player.interrupt()
            answering.cancel()
        waiting = []
        while not self._turns.empty():
            waiting.append(self._turns.get_nowait())
        for turn in waiting:
            if turn.user_id == user_id:
                texts.append(turn.text)
                if turn.ahead is not None:
                    turn.ahead.abandon()
                self._bus.publish(events.ReplyFinished(
                    guild_id=self._guild_id, at=self._clock(), turn_id=turn.turn_id, user_id=turn.user_id,
                    speaker_name=turn.speaker_name, question=turn.text, text="", outcome="withdrawn",
                    timings=turn.timings))
            else:
                self._turns.put_nowait(turn)
        return " ".join(texts) if texts else None

    def confirm(self, turn_id: int) -> None:
        """The server ended the turn: a provisional reply to it may now be heard."""
        self._bus.publish(events.TurnConfirmed(guild_id=self._guild_id, at=self._clock(), turn_id=turn_id))
        current = self._current
        if current is not None and current.turn_id == turn_id and current.confirmed is not None:
            current.timings.mark_once("confirmed")
            current.confirmed.set()
        waiting = []
        while not self._turns.empty():
            waiting.append(self._turns.get_nowait())
        for turn in waiting:
            if turn.turn_id == turn_id and turn.confirmed is not None:
                turn.timings.mark_once("confirmed")
                turn.confirmed.set()
            self._turns.put_nowait(turn)

    # the turn loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            turn = await self._turns.get()
            outcome: events.ReplyOutcome = "failed"
            self._current, self._withdrawn = turn, None
            answer = asyncio.get_running_loop().create_task(self._answer(turn), name="answer")
            self._answering = answer
            try:
                await answer
                outcome = "spoken"
            except asyncio.CancelledError:
                outcome = "withdrawn" if self._withdrawn == turn.turn_id else "interrupted"
                # Cancelling the worker while it awaits `answer` cancels `answer` too, so
                # answer.cancelled() cannot tell a stop from a barge-in; our own count can.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # we are being stopped, not interrupted
            except MistralError as error:
                log.warning("Guild %s: turn failed: %s", self._guild_id, error)
                await post(self._notify, self._guild_id, SERVICE_FAILED)
            except Exception:
                log.exception("Guild %s: turn failed", self._guild_id)
                await post(self._notify, self._guild_id, TURN_FAILED)
            finally:
                self._answering, self._current, self._audio = None, None, None
                if outcome == "withdrawn":
                    turn.reply_text = ""
                self._bus.publish(events.ReplyFinished(
                    guild_id=self._guild_id, at=self._clock(), turn_id=turn.turn_id, user_id=turn.user_id,
                    speaker_name=turn.speaker_name, question=turn.text, text=turn.reply_text, outcome=outcome,
                    timings=turn.timings))
                # The turn's rows and usage are stored before the next turn starts.
                await asyncio.shield(self._background.drain())

    async def _answer(self, turn: PendingTurn) -> None:
        # Usually read while the transcript was being finished: nothing but the request itself
        # stands between the transcript and the chat request.
        ahead, turn.ahead = turn.ahead, None
        context = await self._store.context(ahead)
        messages = [
            ChatMessage(role=m["role"], content=m["content"])
            for m in build_messages(
                persona=turn.persona, history=context.history, speaker_name=turn.speaker_name, text=turn.text,
                max_turns=self._limits.history_turns, max_chars=self._limits.history_chars,
                bot_name=self._bot_name, language=turn.language,
            )
        ]
        # The question's row is written while the model thinks (TurnJournal); the reply is heard
        # only once it is committed (_open_when_saved), so a crash once the reply is being heard
        # still keeps the question. Its speech is requested and encoded meanwhile.
        self._bus.publish(events.ReplyStarted(guild_id=self._guild_id, at=self._clock(), turn_id=turn.turn_id,
                                              user_id=turn.user_id, speaker_name=turn.speaker_name, text=turn.text,
                                              provisional=turn.confirmed is not None))
        await self._speak_reply(turn, messages, context.clip)

    async def _speak_reply(self, turn: PendingTurn, messages: list[ChatMessage], clip: VoiceClip | None) -> None:
        if clip is None and not self._told_about_voice:
            self._told_about_voice = True
            # A REST round trip; the reply need not wait.
            self._notices.spawn(post(self._notify, self._guild_id, NO_VOICE_HINT))
        audio = self._audio = _HeldAudio(self._player)
        opener = asyncio.get_running_loop().create_task(self._open_when_saved(turn, audio), name="open-reply")
        ref_audio, voice_id = clip.speech_voice() if clip else (None, self._default_voice_id)
        speaker = ReplySpeaker(
            self._tts, audio,
            ref_audio=ref_audio,
            voice_id=voice_id,
            clock=self._clock,
            language=turn.language,
        )
        # FFmpeg starts once the chat request is out, while the model thinks (held if provisional):
        # spawned before it, its 1-5 ms (and its threads' start) delayed the request (bench.room).
        sentences = self._sentences(turn, messages, on_open=audio.begin)
        try:
            ledger = await speaker.speak(sentences)
            turn.timings.mark_at("first_tts_audio", ledger.first_audio_at)
            await self._open_when_saved(turn, audio)  # all written and synthesised
            self._player.finish()
            await self._player.wait_done()
            turn.timings.mark_at("first_packet_ready", self._player.first_packet_ready_at)
            turn.timings.mark_at("first_packet_sent", self._player.first_packet_sent_at)
            turn.timings.mark("done")
            turn.reply_text = ledger.text()
        except asyncio.CancelledError:
            self._player.interrupt()
            if self._withdrawn == turn.turn_id:
                raise  # nothing of it was heard
            # Not interrupt()'s return value: a barge-in has usually stopped the player already
            # (_interrupt_reply), and a second interrupt() reports 0 s played.
            played = self._player.played_seconds if audio.begun else 0.0  # not the previous reply's
            turn.reply_text = speaker.ledger.heard_text(played)
            self._bus.publish(events.ReplyInterrupted(
                guild_id=self._guild_id, at=self._clock(), turn_id=turn.turn_id, user_id=turn.user_id,
                heard_text=turn.reply_text, played_seconds=played, spoken_seconds=speaker.ledger.seconds))
            raise
        except BaseException:
            self._player.interrupt()
            raise
        finally:
            opener.cancel()
            # A cancelled reader leaves the generator suspended; close it now, not at garbage
            # collection, so the chat stream's usage is published before the turn ends.
            await sentences.aclose()
            if speaker.ledger.characters:
                self._usage(None, "tts_characters", speaker.ledger.characters)

    async def _open_when_saved(self, turn: PendingTurn, audio: _HeldAudio) -> None:
        """A reply is heard once its question is stored (and, a provisional one, once its turn
        is confirmed). Until then its speech is requested, encoded and buffered (held): at 50
        talking guilds a commit took up to seconds, and the first sentence's speech request used
        to wait for it (docs/benchmarks.md section 6)."""
        if turn.confirmed is not None:
            await turn.confirmed.wait()
        await self._questions.question_saved(turn.turn_id)
        audio.open()

    async def _sentences(
        self, turn: PendingTurn, messages: list[ChatMessage], *, on_open: Callable[[], None]
    ) -> AsyncGenerator[str, None]:
        splitter = SentenceSplitter()
        stream = self._chat.stream(messages, max_tokens=self._limits.max_reply_tokens, on_open=on_open)
        index = 0
        try:
            async for delta in stream:
                turn.timings.mark_once("first_token")
                for sentence in splitter.feed(delta):
                    await self._hand_over(turn, index, sentence)
                    index += 1
                    yield sentence
            for sentence in splitter.flush():
                await self._hand_over(turn, index, sentence)
                index += 1
                yield sentence
        finally:
            await stream.aclose()
            if stream.usage is not None:
                self._usage(turn.user_id, "chat_input_tokens", stream.usage.input_tokens)
                self._usage(turn.user_id, "chat_output_tokens", stream.usage.output_tokens)

    async def _hand_over(self, turn: PendingTurn, index: int, sentence: str) -> None:
        turn.timings.mark_once("first_sentence")
        self._bus.publish(events.ReplySentence(guild_id=self._guild_id, at=self._clock(), turn_id=turn.turn_id,
                                               index=index, text=sentence))

    def _usage(self, user_id: int | None, kind: events.UsageKind, quantity: float) -> None:
        self._bus.publish(events.UsageIncurred(guild_id=self._guild_id, at=self._clock(), user_id=user_id,
                                               kind=kind, quantity=quantity))

