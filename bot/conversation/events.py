"""What happens in one guild's conversation, as typed events on a small per-guild bus.

Listening publishes what it hears; answering publishes what it says. Everything else that wants
to know (timings for ``/status``, usage accounting, turn persistence, metrics, captions, a
turn-taking policy) subscribes instead of adding a branch to the guild loop.

The events, in the order one turn produces them (``at`` is the conversation's monotonic clock):

- ``VoiceOnset``        maybe speech: a few voiced frames, not yet confirmed (may be noise)
- ``SpeechStarted``     a member started talking (confirmed speech, the barge-in signal)
- ``TranscriptPartial`` the text so far of that member's utterance, after each realtime delta
- ``SpeechEnded``       the member stopped (end of the utterance's audio)
- ``TranscriptFinal``   the utterance's whole transcript and its audio seconds
- ``TurnRejected``      no reply will come, with a ``reason`` (see ``RejectReason``)
- ``TurnAccepted``      a reply will be written: the turn is queued for answering
- ``ReplyStarted``      the turn's history is read and its chat request goes out (``provisional``:
                        prepared on the server's eager end of turn, heard only once confirmed)
- ``TurnConfirmed``     the server confirmed a provisional turn's end: its reply may be heard
- ``ReplySentence``     one sentence of the reply, written and handed to speech, in order
- ``ReplyInterrupted``  a barge-in cut the reply: what had been heard of it
- ``ReplyFinished``     the turn is over (spoken, interrupted, failed or withdrawn), with its timings
- ``UsageIncurred``     billable use (STT seconds, chat tokens, TTS characters)

Turns are correlated by ``turn_id`` (per conversation, from 1). Names are stable: other parts of
the bot subscribe to them.

The bus is synchronous: ``publish`` calls each matching handler in subscription order before it
returns. A handler must be quick (schedule slow work elsewhere); an exception in one is logged
and never reaches the publisher or the handlers after it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeVar, cast

if TYPE_CHECKING:
    from bot.conversation.timings import TurnTimings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConversationEvent:
    guild_id: int
    at: float  # the conversation's monotonic clock when it happened


@dataclass(frozen=True, slots=True)
class VoiceOnset(ConversationEvent):
    user_id: int


@dataclass(frozen=True, slots=True)
class SpeechStarted(ConversationEvent):
    user_id: int
    began_at: float  # the first voiced frame (``at`` is when the speech was confirmed)


@dataclass(frozen=True, slots=True)
class SpeechEnded(ConversationEvent):
    user_id: int
    duration: float  # seconds of audio in the utterance
    reason: str  # "silence", "max_length" or "gap" (packets stopped)


@dataclass(frozen=True, slots=True)
class TranscriptPartial(ConversationEvent):
    user_id: int
    text: str  # the whole text so far, not a delta


@dataclass(frozen=True, slots=True)
class TranscriptFinal(ConversationEvent):
    user_id: int
    text: str
    audio_seconds: float
    source: str  # "realtime", "batch" or "empty"


RejectReason = Literal[
    "refused",  # rate limit or budget: the audio was dropped unsent
    "transcription_failed",
    "no_words",  # noise or silence
    "not_addressed",  # overheard: kept as context
    "backlog_full",  # a newer question displaced it from the queue
    "backchannel",  # "mm-hm" said while the bot spoke: heard as context, not a turn
]


@dataclass(frozen=True, slots=True)
class TurnRejected(ConversationEvent):
    user_id: int
    speaker_name: str
    text: str
    reason: RejectReason


@dataclass(frozen=True, slots=True)
class TurnAccepted(ConversationEvent):
    turn_id: int
    user_id: int
    speaker_name: str
    text: str


@dataclass(frozen=True, slots=True)
class ReplyStarted(ConversationEvent):
    turn_id: int
    user_id: int
    speaker_name: str
    text: str  # the question
    provisional: bool = False  # prepared on the server's eager end of turn, heard only once confirmed


@dataclass(frozen=True, slots=True)
class TurnConfirmed(ConversationEvent):
    """The server confirmed the end of a provisional turn: its reply may now be heard."""

    turn_id: int


@dataclass(frozen=True, slots=True)
class ReplySentence(ConversationEvent):
    turn_id: int
    index: int  # 0 for the first sentence
    text: str


@dataclass(frozen=True, slots=True)
class ReplyInterrupted(ConversationEvent):
    turn_id: int
    user_id: int
    heard_text: str  # the sentences that had started playing; a cut one ends with "…"
    played_seconds: float
    spoken_seconds: float  # audio synthesised and handed to the player so far

    @property
    def played_share(self) -> float:
        """How much of the audio handed to the player was heard (0..1)."""
        if self.spoken_seconds <= 0:
            return 0.0
        return min(1.0, self.played_seconds / self.spoken_seconds)


# "withdrawn": the member went on talking before the reply's first audio, or the server's turn
# resumed after an eager end: nothing of it was heard and its question joins the next turn.
ReplyOutcome = Literal["spoken", "interrupted", "failed", "withdrawn"]


@dataclass(frozen=True, slots=True)
class ReplyFinished(ConversationEvent):
    turn_id: int
    user_id: int
    speaker_name: str
    question: str
    text: str  # what was heard of the reply ("" if nothing)
    outcome: ReplyOutcome
    timings: TurnTimings  # complete: no stage is marked after this event


UsageKind = Literal["stt_seconds", "chat_input_tokens", "chat_output_tokens", "tts_characters"]


@dataclass(frozen=True, slots=True)
class UsageIncurred(ConversationEvent):
    user_id: int | None  # None: the bot's own use (speech)
    kind: UsageKind
    quantity: float


E = TypeVar("E", bound=ConversationEvent)
Handler = Callable[[E], None]
Unsubscribe = Callable[[], None]


class EventBus:
    """One guild's bus. Handlers receive events of the subscribed type and its subclasses."""

    def __init__(self) -> None:
        self._subscriptions: list[tuple[type[ConversationEvent], Callable[[ConversationEvent], None]]] = []

    def subscribe(self, event_type: type[E], handler: Handler[E]) -> Unsubscribe:
        """Call ``handler`` for each published ``event_type``; the returned function undoes it."""
        # Called only with instances of event_type, so the narrower handler is safe.
        entry = (cast(type[ConversationEvent], event_type), cast(Callable[[ConversationEvent], None], handler))
        self._subscriptions.append(entry)

        def unsubscribe() -> None:
            if entry in self._subscriptions:
                self._subscriptions.remove(entry)

        return unsubscribe

    def publish(self, event: ConversationEvent) -> None:
        # A snapshot: a handler may subscribe or unsubscribe while we deliver.
        for event_type, handler in list(self._subscriptions):
            if not isinstance(event, event_type):
                continue
            try:
                handler(event)
            except Exception:
                log.exception("Guild %s: %s handler %r failed", event.guild_id, type(event).__name__, handler)
