"""What the conversation needs from the rest of the bot, as Protocols (the ports).

The conversation layer imports no Discord voice class: the engine hands it objects that fit
these shapes (discord.py's cache behind ``Roster``, the FFmpeg player behind ``ReplyPlayer``,
the limits meter behind ``TurnMeter``, the voice client behind ``ReceivingVoice``), and tests
hand it scripted ones.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from bot.audio.frames import S16LE, SampleFormat
from bot.audio.ogg_opus import OpusPages

if TYPE_CHECKING:
    from bot.conversation.turn import PendingTurn
    from bot.voice.handoff import SpeechSink

Notify = Callable[[str], Awaitable[None]]
"""Posts a short message to the guild's text channel."""


class Roster(Protocol):
    """Who is in the bot's voice channel; backed by discord.py's cache in production."""

    def display_name(self, user_id: int) -> str: ...

    def humans_in_channel(self) -> int: ...

    def names_in_channel(self) -> list[str]:
        """Display names of the members in the channel (to bias recognition toward them)."""
        ...


class ReplyPlayer(Protocol):
    def begin_reply(self, *, held: bool = False) -> None: ...

    def release(self) -> None:
        """A reply begun ``held`` may now be heard."""
        ...

    def feed(self, pcm: bytes, sample_format: SampleFormat = S16LE) -> None: ...

    def feed_pages(self, pages: OpusPages) -> None: ...

    def finish(self) -> None: ...

    async def wait_done(self) -> object: ...

    def interrupt(self) -> float: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    @property
    def playing(self) -> bool: ...

    @property
    def first_packet_sent_at(self) -> float | None: ...

    @property
    def first_packet_ready_at(self) -> float | None:
        """When the current (or else the last) reply's first packet was encoded, before the
        playout prebuffer's wait."""
        ...

    @property
    def played_seconds(self) -> float:
        """Seconds of the current (or else the last) reply handed to Discord so far."""
        ...


class TurnMeter(Protocol):
    """Rate limits, budgets and usage accounting; the conversation asks before it spends money."""

    async def admit(self, guild_id: int, user_id: int) -> str | None:
        """A voice turn that goes to the chat model: None to go ahead; otherwise a short notice
        to post (or "" to refuse silently). Counts against the voice-turn rate limits."""
        ...

    async def may_listen(self, guild_id: int, user_id: int) -> str | None:
        """May this utterance be transcribed at all (the budget)? Counts no turn: overheard speech
        costs STT seconds only. None to go ahead, else a notice as for ``admit``."""
        ...

    def rate_limited(self, guild_id: int, user_id: int) -> bool:
        """The member's last voice turn was refused and their limit has not refilled yet."""
        ...

    async def record(self, guild_id: int, user_id: int | None, kind: str, quantity: float) -> None: ...


class UnmeteredTurns:
    """A ``TurnMeter`` that admits everything and records nothing."""

    async def admit(self, guild_id: int, user_id: int) -> str | None:
        return None

    async def may_listen(self, guild_id: int, user_id: int) -> str | None:
        return None

    def rate_limited(self, guild_id: int, user_id: int) -> bool:
        return False

    async def record(self, guild_id: int, user_id: int | None, kind: str, quantity: float) -> None:
        return None


Admission = Callable[[int], bool]
"""Whether a member's audio may be received at all (consent); asked before decryption."""


class Readmitting(Protocol):
    def readmit(self) -> None:
        """Consent changed: ask ``admit`` again for everyone already heard."""
        ...


@runtime_checkable
class ReceivingVoice(Protocol):
    """A voice connection that can hear: our voice client. A plain discord.py client cannot."""

    @property
    def receiver(self) -> Readmitting: ...

    def start_receiving(self, sink: SpeechSink, *, admit: Admission | None = None) -> None: ...

    def stop_receiving(self) -> None: ...


class QuestionLog(Protocol):
    """Where the question of a turn is stored; its reply is heard only once it is."""

    async def question_saved(self, turn_id: int) -> None: ...


class Answerer(Protocol):
    """What listening hands turns to (answering)."""

    def enqueue(self, turn: PendingTurn) -> None: ...

    def confirm(self, turn_id: int) -> None:
        """The server confirmed a provisional turn's end: its reply may be heard."""
        ...

    def withdraw(self, user_id: int) -> str | None:
        """Cancel the member's unheard reply and waiting turns; their questions' text."""
        ...


class TurnGate(Protocol):
    def admits(self, user_id: int, text: str) -> bool:
        """May this utterance become a turn (not a backchannel said over the bot)?"""
        ...
