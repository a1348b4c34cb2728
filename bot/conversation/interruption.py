"""Who may interrupt the bot while it speaks, and when a voice only pauses it (a bus subscriber).

While a reply is being written or spoken:

- **Eligible** to interrupt: the member it is answering, and anyone who addresses it: every
  human in ``always`` mode, the only human in the channel in ``auto`` mode, and whoever says its
  name (known from their first transcript words). Everyone else is heard as context: their voice
  neither pauses nor stops the reply. A member over their voice-turn rate never interrupts.
- An eligible **onset** pauses playback at once (the player's pause is immediate: the 60 ms onset
  plus one 20 ms frame). Then the first transcript words decide: a backchannel ("mm-hm", "yeah",
  "okay"…) or no words at all (a cough, noise) resume playback where it paused; anything else is
  a real turn, which stops the reply and cancels everything it had started.
- **Never answer a fragment**: when the member being answered starts speaking again before the
  reply's first audio, the reply is withdrawn (``Withdraw``) so their two utterances become one
  question (listening joins the texts).

A backchannel utterance is no turn of its own either: ``admits`` tells listening to keep it as
context. The policy only decides; answering owns the player and the reply task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bot.conversation import events
from bot.conversation.addressing import AddressingPolicy
from bot.conversation.backchannel import is_backchannel, words_of

log = logging.getLogger(__name__)

# No words this long after confirmed speech: it was noise the transcriber found nothing in.
WORDS_GRACE_SECONDS = 3.0


class Interruptible(Protocol):
    """What the policy needs from answering."""

    @property
    def speaking(self) -> bool:
        """A reply is being written or spoken."""
        ...

    @property
    def answering_user(self) -> int | None:
        """The member whose question the current reply answers."""
        ...

    @property
    def audio_started(self) -> bool:
        """The current reply's first audio has been played."""
        ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def interrupt(self) -> None:
        """Stop the sound and cancel the reply (a real turn)."""
        ...

    def withdraw(self, user_id: int) -> str | None:
        """Cancel the unplayed reply to ``user_id`` (and any turn of theirs still queued); the
        question text withdrawn, or None if there was none."""
        ...


@dataclass(frozen=True, slots=True)
class Eligibility:
    """The addressing rules in force (read from the guild's settings when a reply starts)."""

    policy: AddressingPolicy
    humans: int

    def anyone(self) -> bool:
        """Everyone addresses it (``always``, or the only human in ``auto``)."""
        return self.policy.is_addressed("", self.humans)

    def addresses(self, text: str) -> bool:
        return self.policy.is_addressed(text, self.humans)


class InterruptionPolicy:
    def __init__(
        self, *, bus: events.EventBus, reply: Interruptible, eligibility: Callable[[], Eligibility],
        rate_limited: Callable[[int], bool], on_withdrawn: Callable[[int, str], None],
        onset_grace: float, words_grace: float = WORDS_GRACE_SECONDS,
    ) -> None:
        self._reply = reply
        self._eligibility = eligibility
        self._rate_limited = rate_limited
        self._on_withdrawn = on_withdrawn
        self._onset_grace = onset_grace
        self._words_grace = words_grace
        self._holder: int | None = None  # the member whose voice holds the reply paused
        self._timer: asyncio.TimerHandle | None = None
        self._backchannels: set[int] = set()  # members whose current utterance is a backchannel
        bus.subscribe(events.VoiceOnset, self._on_onset)
        bus.subscribe(events.SpeechStarted, self._on_speech)
        bus.subscribe(events.TranscriptPartial, self._on_words)
        bus.subscribe(events.TranscriptFinal, self._on_final)
        bus.subscribe(events.ReplyFinished, self._on_reply_finished)

    # listening asks ---------------------------------------------------------------------------

    def admits(self, user_id: int, text: str) -> bool:
        """May this utterance become a turn? Not a backchannel said over the bot (the mark lasts
        until the member's next speech)."""
        return not (user_id in self._backchannels and is_backchannel(text))

    # events -----------------------------------------------------------------------------------

    def _eligible(self, user_id: int) -> bool:
        return user_id == self._reply.answering_user or self._eligibility().anyone()

    def _on_onset(self, event: events.VoiceOnset) -> None:
        if not self._reply.speaking or self._holder is not None or not self._reply.audio_started:
            return
        if self._eligible(event.user_id) and not self._rate_limited(event.user_id):
            self._hold(event.user_id, self._onset_grace)

    def _on_speech(self, event: events.SpeechStarted) -> None:
        user = event.user_id
        self._backchannels.discard(user)
        if not self._reply.speaking:
            return
        if user == self._reply.answering_user and not self._reply.audio_started:
            # They were not done: the reply to their first part must not play; answer the whole.
            withdrawn = self._reply.withdraw(user)
            if withdrawn:
                self._on_withdrawn(user, withdrawn)
            return
        if not self._eligible(user) or self._rate_limited(user):
            if self._holder == user:
                self._release()  # context, or over their rate: they never interrupt
            return
        if self._holder in (None, user):
            self._hold(user, self._words_grace)

    def _on_words(self, event: events.TranscriptPartial) -> None:
        user = event.user_id
        if not self._reply.speaking or not words_of(event.text):
            return
        if self._holder == user or user in self._backchannels:
            if is_backchannel(event.text):
                self._backchannels.add(user)
                if self._holder == user:
                    self._release()
                return
            self._backchannels.discard(user)
            self._stop()
        elif self._holder is None and self._eligibility().addresses(event.text) and not self._rate_limited(user):
            self._stop()  # someone else said the bot's name: they may interrupt

    def _on_final(self, event: events.TranscriptFinal) -> None:
        if self._holder == event.user_id and not words_of(event.text):
            self._release()  # noise: carry on

    def _on_reply_finished(self, event: events.ReplyFinished) -> None:
        self._cancel_timer()
        self._holder = None

    # the player -------------------------------------------------------------------------------

    def _hold(self, user_id: int, grace: float) -> None:
        if self._holder is None:
            self._reply.pause()
        self._holder = user_id
        self._cancel_timer()
        self._timer = asyncio.get_running_loop().call_later(grace, self._release)

    def _release(self) -> None:
        self._cancel_timer()
        if self._holder is not None:
            self._holder = None
            self._reply.resume()

    def _stop(self) -> None:
        self._cancel_timer()
        self._holder = None
        self._reply.interrupt()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def stop(self) -> None:
        self._cancel_timer()
