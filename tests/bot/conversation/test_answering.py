"""Answering's critical path: a provisional reply is encoded while held; a reply still in the
prebuffer was heard by nobody."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.conversation import events
from bot.conversation.answering import Answering
from bot.conversation.context import ConversationStore
from bot.conversation.timings import TurnTimings
from bot.conversation.turn import Background, ConversationLimits, PendingTurn
from bot.conversation.turn_detection import SERVER_TURN_DETECTION
from bot.store import Database
from tests.bot.conversation.scripted import InstantPlayer, ScriptedChat, ScriptedSynthesizer

GUILD = 5


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    async with Database.open(f"sqlite:///{tmp_path / 'voxcord.db'}") as db:
        yield db


class Saved:
    async def question_saved(self, turn_id: int) -> None:
        return None


class OrderedPlayer(InstantPlayer):
    """Keeps the order of what happened to it, beside the chat requests (``log`` is shared)."""

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    def begin_reply(self, *, held: bool = False) -> None:
        super().begin_reply(held=held)
        self.log.append("begin held" if held else "begin")

    def release(self) -> None:
        super().release()
        self.log.append("release")


class OrderedChat(ScriptedChat):
    def __init__(self, log: list[str], *replies: list[str]) -> None:
        super().__init__(*replies)
        self.log = log

    def stream(self, messages: list[object], *, max_tokens: int, on_open=None):  # noqa: ANN001, ANN201 - as ScriptedChat
        self.log.append("chat")

        def opened() -> None:
            self.log.append("chat sent")
            if on_open is not None:
                on_open()

        return super().stream(messages, max_tokens=max_tokens, on_open=opened)


class SlowCommit:
    """The question's row commits only when the test says so (a batch stuck behind the write lock)."""

    def __init__(self) -> None:
        self.asked: list[int] = []
        self.committed = asyncio.Event()

    async def question_saved(self, turn_id: int) -> None:
        self.asked.append(turn_id)
        await self.committed.wait()


def answering(database: Database, chat: ScriptedChat, player: InstantPlayer, *,
              questions: Saved | SlowCommit | None = None,
              synthesizer: ScriptedSynthesizer | None = None) -> Answering:
    async def notify(message: str) -> None:
        return None

    return Answering(
        guild_id=GUILD, bus=events.EventBus(),
        store=ConversationStore(database, GUILD, history_turns=10, history_chars=4000),
        chat=chat, synthesizer=synthesizer or ScriptedSynthesizer(), player=player,  # type: ignore[arg-type]
        questions=questions or Saved(),
        notify=notify, bot_name="Voxcord", clock=time.monotonic, limits=ConversationLimits(),
        background=Background(), turn_detection=SERVER_TURN_DETECTION,
    )


def turn(turn_id: int, *, provisional: bool) -> PendingTurn:
    return PendingTurn(turn_id=turn_id, user_id=7, speaker_name="member7", text="What time is it?",
                       timings=TurnTimings(clock=time.monotonic),
                       confirmed=asyncio.Event() if provisional else None)


async def until(done: Callable[[], bool]) -> None:
    """Wait (at most 10 s) for what the answering tasks do on their own."""
    async with asyncio.timeout(10):
        while not done():  # noqa: ASYNC110 - polled: the tasks signal nothing a test could await
            await asyncio.sleep(0.01)


async def test_a_held_reply_is_encoded_while_held_and_heard_from_its_confirmation(database: Database) -> None:
    # Its speech goes to the player (FFmpeg encodes it, the prebuffer fills) while the turn is
    # unconfirmed, so a late confirmation finds it ready to play at once; nothing is heard first.
    log: list[str] = []
    player = OrderedPlayer(log)
    answers = answering(database, OrderedChat(log, ["It is noon."]), player)
    answers.start()
    pending = turn(1, provisional=True)
    try:
        answers.enqueue(pending)
        await until(lambda: bool(player.pcm))  # the reply is written and synthesised on its own
        assert player.held and player.heard == 0 and not answers.audio_started
        answers.confirm(1)
        await until(lambda: "release" in log)
    finally:
        await answers.stop()
    assert log == ["chat", "chat sent", "begin held", "release"]
    assert not player.held


async def test_the_chat_request_goes_out_before_the_reply_spawns_ffmpeg(database: Database) -> None:
    # Spawning FFmpeg (and starting its threads) took 1-5 ms of the loop; spawned first, it
    # delayed the chat request by that much (bench.room). The model thinks ~300 ms: room enough.
    log: list[str] = []
    player = OrderedPlayer(log)
    answers = answering(database, OrderedChat(log, ["It is noon."]), player)
    answers.start()
    try:
        answers.enqueue(turn(1, provisional=False))
        await until(lambda: bool(player.pcm))  # the reply is written and synthesised on its own
    finally:
        await answers.stop()
    assert log == ["chat", "chat sent", "begin"]
    assert player.heard > 0


class BufferingPlayer(InstantPlayer):
    """A reply whose speech is fed but still in the prebuffer: no packet sent until ``send``."""

    def __init__(self) -> None:
        super().__init__()
        self.sent_at: float | None = None
        self.done = asyncio.Event()

    def begin_reply(self, *, held: bool = False) -> None:
        super().begin_reply(held=held)
        self.sent_at = None
        self.done = asyncio.Event()

    async def wait_done(self) -> None:
        await self.done.wait()

    def interrupt(self) -> float:
        self.done.set()
        return super().interrupt()

    @property
    def first_packet_sent_at(self) -> float | None:
        return self.sent_at

    def finish(self) -> None:
        """Plays on until interrupted: the test decides when the first packet goes out."""


async def test_a_reply_still_in_the_prebuffer_is_unheard_and_withdrawn_when_the_member_goes_on(
    database: Database,
) -> None:
    # The boundary of "the two parts become one turn" is the reply's first packet heard, not its
    # speech reaching the player: the prebuffer's ~60 ms are heard by nobody.
    player = BufferingPlayer()
    answers = answering(database, ScriptedChat(["It is noon."], ["It is noon."]), player)
    answers.start()
    try:
        answers.enqueue(turn(1, provisional=False))
        await until(lambda: bool(player.pcm))
        assert not answers.audio_started  # fed, not heard
        assert answers.withdraw(7) == "What time is it?"  # so the member's next words join it

        fed = len(player.pcm)
        answers.enqueue(turn(2, provisional=False))
        await until(lambda: len(player.pcm) != fed)  # the second reply's speech
        player.sent_at = time.monotonic()  # the first packet went out
        assert answers.audio_started
        assert answers.withdraw(7) is None  # heard: a barge-in's business, not a withdrawal
        answers.interrupt()
    finally:
        await answers.stop()


async def test_the_speech_is_requested_before_the_question_commits_and_heard_only_after(database: Database) -> None:
    # At 50 talking guilds a group commit took up to seconds; the first sentence's TTS request
    # waited for it (step_first_tts_audio p95 3.3 s against 0.3 s of TTS). Now the speech is
    # requested and encoded (held) at once, and the reply is heard once the question is stored:
    # a crash while it is being heard still keeps the question.
    log: list[str] = []
    player = OrderedPlayer(log)
    commit, synthesizer = SlowCommit(), ScriptedSynthesizer()
    answers = answering(database, OrderedChat(log, ["It is noon right now. ", "Time for lunch."]), player,
                        questions=commit, synthesizer=synthesizer)
    answers.start()
    try:
        answers.enqueue(turn(1, provisional=False))
        await until(lambda: len(synthesizer.texts) >= 2 and bool(player.pcm))  # written and synthesised on its own
        assert synthesizer.texts == ["It is noon right now.", "Time for lunch."]
        assert set(commit.asked) == {1}
        assert player.held and player.heard == 0 and not answers.audio_started
        assert log == ["chat", "chat sent", "begin held"]
        commit.committed.set()
        await until(lambda: "release" in log)
    finally:
        await answers.stop()
    assert log == ["chat", "chat sent", "begin held", "release"]
    assert not player.held


async def test_a_question_already_committed_opens_its_reply_unheld(database: Database) -> None:
    # The usual case at low load: the row commits while the model thinks, so FFmpeg starts
    # unheld and the player's prebuffer alone decides the first packet, as before.
    log: list[str] = []
    player = OrderedPlayer(log)
    commit = SlowCommit()
    commit.committed.set()
    answers = answering(database, OrderedChat(log, ["It is noon."]), player, questions=commit)
    answers.start()
    try:
        answers.enqueue(turn(1, provisional=False))
        await until(lambda: bool(player.pcm))
    finally:
        await answers.stop()
    assert log == ["chat", "chat sent", "begin"]
    assert player.heard == len(player.pcm) > 0
