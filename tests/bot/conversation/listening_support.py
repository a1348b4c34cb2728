"""What the listening tests share: a Listening on a model with server turn detection, for member
7 alone with the bot, and stand-ins for the meter and answering that record what listening did."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from bot.audio.utterances import SpeechStarted, UtteranceAudio, UtteranceEnded
from bot.conversation import events
from bot.conversation.context import ConversationStore
from bot.conversation.listening import Listening
from bot.conversation.turn import PendingTurn
from bot.conversation.turn_detection import SERVER_TURN_DETECTION
from bot.store import Database
from tests.bot.conversation.scripted import Alone

GUILD = 5
QUESTION = "Voxcord, what time is it?"
VOICE = b"\0\x10" * 320  # 20 ms, loud


async def _no_notice(message: str) -> None:
    return None


def server_listening(database: Database, transcriber: object, meter: object, answerer: object, *,
                     bus: events.EventBus | None = None, store: ConversationStore | None = None,
                     clock: Callable[[], float] = time.monotonic) -> Listening:
    """A member alone with the bot, on a model with server turn detection."""
    return Listening(
        guild_id=GUILD, bus=bus or events.EventBus(), database=database,
        store=store or ConversationStore(database, GUILD, history_turns=10, history_chars=4000),
        transcriber=transcriber, roster=Alone(), meter=meter, notify=_no_notice,  # type: ignore[arg-type]
        bot_name="Voxcord", clock=clock, answerer=answerer,  # type: ignore[arg-type]
        turn_detection=SERVER_TURN_DETECTION,
    )


def start_speaking(listening: Listening, pcm: bytes) -> None:
    """Member 7 starts an utterance, detected at once, with ``pcm`` as its first audio."""
    now = time.monotonic()
    listening.on_heard(7, SpeechStarted(at=now, detected_at=now))
    listening.on_heard(7, UtteranceAudio(pcm))


async def end_and_settle(listening: Listening, *, duration: float = 0.5) -> None:
    """Member 7's utterance ends after a pause; wait until every transcription it began is done."""
    listening.on_heard(7, UtteranceEnded(duration=duration, reason="silence", at=time.monotonic()))
    while listening._transcriptions:
        await asyncio.sleep(0.01)


class SlowMeter:
    """The first ``admit`` (the database round trip) waits until the test lets it through."""

    def __init__(self) -> None:
        self.admits = 0
        self.asked = asyncio.Event()
        self.release = asyncio.Event()

    async def admit(self, guild_id: int, user_id: int) -> str | None:
        self.admits += 1
        self.asked.set()
        if self.admits == 1:
            await self.release.wait()
        return None

    async def may_listen(self, guild_id: int, user_id: int) -> str | None:
        return None

    def rate_limited(self, guild_id: int, user_id: int) -> bool:
        return False


class RecordingAnswerer:
    def __init__(self) -> None:
        self.enqueued: list[PendingTurn] = []
        self.confirmed: list[int] = []
        self.withdrawn: list[int] = []
        self.gone: set[int] = set()

    def enqueue(self, turn: PendingTurn) -> None:
        self.enqueued.append(turn)

    def confirm(self, turn_id: int) -> None:
        self.confirmed.append(turn_id)

    def withdraw(self, user_id: int) -> str | None:
        """As answering does: the unheard turns of ``user_id`` go, their text is returned."""
        self.withdrawn.append(user_id)
        texts = [t.text for t in self.enqueued if t.user_id == user_id and t.turn_id not in self.gone]
        self.gone.update(t.turn_id for t in self.enqueued if t.user_id == user_id)
        return " ".join(texts) or None
