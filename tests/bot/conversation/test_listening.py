"""Listening's own eager end racing the end of the transcript (the 50-guild hang of ed5985c)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.audio.utterances import SpeechStarted, UtteranceAudio, UtteranceEnded
from bot.conversation import events
from bot.conversation.context import ConversationStore
from bot.conversation.listening import Listening
from bot.conversation.turn import PendingTurn
from bot.conversation.turn_detection import SERVER_TURN_DETECTION
from bot.mistral.stt import Transcript
from bot.store import Database
from tests.bot.conversation.scripted import Alone

GUILD = 5
QUESTION = "Voxcord, what time is it?"


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    async with Database.open(f"sqlite:///{tmp_path / 'voxcord.db'}") as db:
        yield db


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


class TurnsTranscriber:
    """Voxtral 3 as the bot sees it: the whole question's text comes while the member speaks;
    the final transcript comes once the audio ends (no server turn event in time)."""

    turn_detection_available = True

    def __init__(self) -> None:
        self.silence = asyncio.Event()  # silence is being streamed after the voice

    async def transcribe(self, audio: AsyncIterator[bytes], *, on_partial=None, on_turn=None,  # noqa: ANN001
                         on_language=None, options=None) -> Transcript:  # noqa: ANN001
        received = 0
        async for chunk in audio:
            if received and not any(chunk):
                self.silence.set()
            elif on_partial is not None:
                on_partial(QUESTION)
            received += len(chunk)
        return Transcript(text=QUESTION, language="en", audio_seconds=received / 32_000, partial_updates=1)


class RecordingAnswerer:
    def __init__(self) -> None:
        self.enqueued: list[PendingTurn] = []
        self.confirmed: list[int] = []
        self.withdrawn: list[int] = []

    def enqueue(self, turn: PendingTurn) -> None:
        self.enqueued.append(turn)

    def confirm(self, turn_id: int) -> None:
        self.confirmed.append(turn_id)

    def withdraw(self, user_id: int) -> str | None:
        self.withdrawn.append(user_id)
        return None


async def test_our_eager_end_still_being_made_when_the_transcript_ends_is_confirmed_not_orphaned(
    database: Database,
) -> None:
    # Under load the early turn's admit (a database write) is still pending when the final
    # transcript arrives; the early turn must then be the one answered and be confirmed, never
    # enqueued after the utterance was concluded with nobody left to confirm or withdraw it.
    meter, answerer, transcriber = SlowMeter(), RecordingAnswerer(), TurnsTranscriber()

    async def notify(message: str) -> None:
        return None

    listening = Listening(
        guild_id=GUILD, bus=events.EventBus(), database=database,
        store=ConversationStore(database, GUILD, history_turns=10, history_chars=4000),
        transcriber=transcriber, roster=Alone(), meter=meter, notify=notify,  # type: ignore[arg-type]
        bot_name="Voxcord", clock=time.monotonic, answerer=answerer, turn_detection=SERVER_TURN_DETECTION,
    )
    now = time.monotonic()
    listening.on_heard(7, SpeechStarted(at=now, detected_at=now))
    listening.on_heard(7, UtteranceAudio(b"\0\x10" * 3_200))
    try:
        async with asyncio.timeout(10):
            await meter.asked.wait()  # our eager end began making the provisional turn
            listening.on_heard(7, UtteranceEnded(duration=0.5, reason="silence", at=time.monotonic()))
            for _ in range(50):  # the transcript concludes while the early turn is admitted
                await asyncio.sleep(0)
            meter.release.set()
            while listening._transcriptions:
                await asyncio.sleep(0.01)
    finally:
        await listening.stop()
    assert transcriber.silence.is_set()
    assert meter.admits == 1  # one question, counted once
    assert [turn.text for turn in answerer.enqueued] == [QUESTION]
    provisional = answerer.enqueued[0]
    assert provisional.confirmed is not None and answerer.confirmed == [provisional.turn_id]
    assert answerer.withdrawn == []
