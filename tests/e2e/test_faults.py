"""Faults: Mistral misbehaves, the bot copes, says so when it must, and the next turn works.

Everything real but the services (see test_conversation.py), except the stall test: the chat
timeouts are constructor defaults in ``bot.__main__.assemble`` (15 s to the first token, then up
to 4 attempts in 20 s), far too long for a test, so that one drives a ``GuildConversation`` built
with short timeouts, still over the real SDK and the fake Mistral.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from mistralai.client import Mistral

from bot.audio.utterances import SpeechStarted, UtteranceAudio, UtteranceEnded
from bot.conversation.guild import GuildConversation
from bot.mistral import ChatModel, RetryPolicy, SpeechSynthesizer, StreamingTranscriber
from bot.store import Database
from tests.e2e.conversation_support import Call, call_in_progress, wait_turns
from tests.fakes.discord import FakeDiscord
from tests.fakes.mistral import FakeMistral
from tests.fakes.synth import speech_like, spoken_question, to_int16
from tests.harness import build_world

GUARD_S = 30.0  # hang guard only
LEAVE_GUARD_S = 10.0  # hang guard for /leave, which takes well under a second

QUESTION = "What is the capital of France?"
ANSWER = "Paris is the capital of France."
NEXT_QUESTION = "And of Italy?"
NEXT_ANSWER = "Rome is the capital of Italy."
SORRY = "couldn't answer that"


def script(fake: FakeMistral, question: str, answer: str) -> None:
    fake.transcribe = lambda _audio: question
    fake.reply = lambda _messages: answer
    fake.tts_seconds_per_character = 0.02  # short replies (~0.6 s) keep these tests quick


async def wait_until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(GUARD_S):
        while True:  # polls state the bot and fakes keep without events (the database, messages)
            if predicate():
                return
            await asyncio.sleep(0.05)


def apologies(fake_discord: FakeDiscord) -> list[str]:
    return [m.get("content", "") for m in fake_discord.sent_messages if "Sorry" in m.get("content", "")]


async def heard(call: Call) -> int:
    """Wait for the bot to finish saying something; return the real audio frames heard so far."""
    audio = call.fake_voice.bot_audio(call.world.guild.id)
    async with asyncio.timeout(GUARD_S):
        await audio.wait_for_silence()
    return len(audio.opus_frames())


async def next_turn_works(call: Call, turns_before: int, *, seed: int = 9) -> None:
    """The conversation goes on: a new question is answered, aloud and in history."""
    script(call.fake_mistral, NEXT_QUESTION, NEXT_ANSWER)
    audio = call.fake_voice.bot_audio(call.world.guild.id)
    audio.clear()
    await call.speaker.speak(spoken_question(0.7, seed=seed))
    turns = await wait_turns(call.bot, call.world.guild.id, turns_before + 2, deadline=GUARD_S)
    assert [(t.role, t.text) for t in turns[-2:]] == [("user", NEXT_QUESTION), ("assistant", NEXT_ANSWER)]
    assert await heard(call) > 0
    assert call.fake_mistral.requests_to("speech")[-1].body["input"] == NEXT_ANSWER


async def test_chat_503_is_retried_and_the_answer_is_heard(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    script(fake_mistral, QUESTION, ANSWER)
    fake_mistral.faults.fail_next("chat", status=503)
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path) as call:
        await call.speaker.speak(spoken_question(0.7, seed=1))
        turns = await wait_turns(call.bot, call.world.guild.id, 2, deadline=GUARD_S)
        assert [(t.role, t.text) for t in turns] == [("user", QUESTION), ("assistant", ANSWER)]
        assert await heard(call) > 0
        assert [r.status for r in fake_mistral.requests_to("chat")] == [503, 200]
        assert not apologies(fake_discord)
        await next_turn_works(call, 2)


async def test_chat_429_waits_out_retry_after_then_answers(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    script(fake_mistral, QUESTION, ANSWER)
    fake_mistral.faults.fail_next("chat", status=429, retry_after=1)
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path) as call:
        await call.speaker.speak(spoken_question(0.7, seed=1))
        turns = await wait_turns(call.bot, call.world.guild.id, 2, deadline=GUARD_S)
        assert turns[-1].text == ANSWER
        assert await heard(call) > 0
        refused, answered = fake_mistral.requests_to("chat")
        assert (refused.status, answered.status) == (429, 200)
        # A lower bound only: the policy's own backoff after a first failure is at most 0.5 s,
        # so a gap of ~1 s shows the server's Retry-After was what the bot waited for.
        gap = answered.received_at - refused.received_at
        assert gap >= 0.95, gap
        await next_turn_works(call, 2)


async def test_speech_503_until_retries_run_out_is_reported_in_text_and_listening_goes_on(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    script(fake_mistral, QUESTION, ANSWER)  # one sentence: one synthesis takes all four faults
    fake_mistral.faults.fail_next("speech", times=4, status=503)
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path) as call:
        await call.speaker.speak(spoken_question(0.7, seed=1))
        await wait_until(lambda: bool(apologies(fake_discord)))
        [apology] = apologies(fake_discord)
        assert SORRY in apology and "listening" in apology and len(apology) < 200, apology
        assert [r.status for r in fake_mistral.requests_to("speech")] == [503] * 4
        turns = await call.bot.database.turns.recent(call.world.guild.id, limit=10)
        # The question is kept; nothing was said, so there is no assistant turn.
        assert [(t.role, t.text) for t in turns] == [("user", QUESTION)]
        assert not call.fake_voice.bot_audio(call.world.guild.id).opus_frames()
        await next_turn_works(call, 1)
    assert len(apologies(fake_discord)) == 1


async def test_realtime_socket_closed_mid_utterance_falls_back_to_batch(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    script(fake_mistral, QUESTION, ANSWER)
    fake_mistral.faults.close_realtime_next(after_appends=1)
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path) as call:
        await call.speaker.speak(spoken_question(1.0, seed=1))
        turns = await wait_turns(call.bot, call.world.guild.id, 2, deadline=GUARD_S)
        assert [(t.role, t.text) for t in turns] == [("user", QUESTION), ("assistant", ANSWER)]
        assert await heard(call) > 0
        [batch] = fake_mistral.requests_to("transcriptions")
        assert batch.status == 200
        first = fake_mistral.realtime_sessions[0]
        assert first.closed.is_set() and "transcription.done" not in [e["type"] for e in first.sent]
        # The whole utterance went to the batch endpoint, not just what reached the socket.
        assert len(first.audio) < len(batch.body["file"][""])
        assert not apologies(fake_discord)
        await next_turn_works(call, 2)
    assert len(fake_mistral.requests_to("transcriptions")) == 1  # the next turn streamed again


async def test_one_guild_stuck_on_a_stalled_chat_does_not_hold_up_another(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    script(fake_mistral, QUESTION, ANSWER)
    fake_mistral.faults.stall_next("chat")
    stuck, fine = build_world(fake_discord, "Stuck"), build_world(fake_discord, "Fine")
    async with (
        call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path, world=stuck) as one,
        call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path, world=fine, bot=one.bot,
                         seed=7) as two,
    ):
        await one.speaker.speak(spoken_question(0.7, seed=1))
        await wait_until(lambda: len(fake_mistral.requests_to("chat")) == 1)  # the stuck guild's

        await two.speaker.speak(spoken_question(0.7, seed=2))
        fine_turns = await wait_turns(two.bot, fine.guild.id, 2, deadline=GUARD_S)
        assert await heard(two) > 0
        stuck_turns = await one.bot.database.turns.recent(stuck.guild.id, limit=10)
        stuck_frames = fake_voice.bot_audio(stuck.guild.id).opus_frames()

        # The stuck guild leaves while its answer is still pending; that must not hang either.
        left = await (await fake_discord.invoke(
            guild_id=stuck.guild.id, user_id=stuck.member_id, command="leave", channel_id=stuck.text.id,
        )).wait_reply(timeout=LEAVE_GUARD_S)
        assert "Left" in left.content, left.content

        script(fake_mistral, NEXT_QUESTION, NEXT_ANSWER)
        await two.speaker.speak(spoken_question(0.7, seed=3))
        fine_turns = await wait_turns(two.bot, fine.guild.id, 4, deadline=GUARD_S)

    assert [t.role for t in stuck_turns] == ["user"]  # still waiting for its answer
    assert [(t.role, t.text) for t in fine_turns] == [
        ("user", QUESTION), ("assistant", ANSWER), ("user", NEXT_QUESTION), ("assistant", NEXT_ANSWER)]
    stalled, *answered = fake_mistral.requests_to("chat")
    assert stalled.status is None and [r.status for r in answered] == [200, 200]
    assert not stuck_frames
    assert not apologies(fake_discord)


async def test_a_stalled_chat_apologises_within_the_configured_timeouts(
    fake_discord, fake_voice, fake_mistral, fake_discord_env, tmp_path: Path
) -> None:
    """CHAT_FIRST_TOKEN_TIMEOUT and RETRY_MAX_ATTEMPTS bound how long a stalled chat can hold a turn:
    two stalled attempts of 0.5 s, then one apology, and the next turn is answered."""
    script(fake_mistral, QUESTION, ANSWER)
    fake_mistral.faults.stall_next("chat", times=2)
    settings = {"chat_first_token_timeout": 0.5, "retry_max_attempts": 2, "retry_max_total_seconds": 5.0}
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path, settings=settings) as call:
        await call.speaker.speak(spoken_question(0.7, seed=1))
        await wait_until(lambda: len(apologies(fake_discord)) == 1)
        assert len(fake_mistral.requests_to("chat")) == 2

        script(fake_mistral, NEXT_QUESTION, NEXT_ANSWER)
        await call.speaker.speak(spoken_question(0.7, seed=2))
        turns = await wait_turns(call.bot, call.world.guild.id, 3, deadline=GUARD_S)

    assert [(t.role, t.text) for t in turns] == [
        ("user", QUESTION), ("user", NEXT_QUESTION), ("assistant", NEXT_ANSWER)]
    assert len(apologies(fake_discord)) == 1


# --------------------------------------------------------------------- component level: a stall

class RecordingPlayer:
    """Stands in for ``SpeechPlayer``: keeps the PCM it is fed; a reply "plays" instantly."""

    def __init__(self) -> None:
        self.pcm = bytearray()
        self.replies = 0
        self._playing = False
        self.held = False

    def begin_reply(self, *, held: bool = False) -> None:
        self.replies += 1
        self._playing = True
        self.held = held

    def release(self) -> None:
        self.held = False

    def feed(self, pcm: bytes, sample_format: str = "s16le") -> None:
        self.pcm += pcm

    def finish(self) -> None:
        self._playing = False

    async def wait_done(self) -> None:
        return None

    def interrupt(self) -> float:
        self._playing = False
        return 0.0

    @property
    def playing(self) -> bool:
        return self._playing

    @property
    def first_packet_sent_at(self) -> float | None:
        return None

    @property
    def first_packet_ready_at(self) -> float | None:
        return None

    @property
    def played_seconds(self) -> float:
        return 0.0


class Alone:
    def display_name(self, user_id: int) -> str:
        return "bob"

    def humans_in_channel(self) -> int:
        return 1

    def names_in_channel(self) -> list[str]:
        return ["bob"]


class VirtualSleep:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def utter(conversation: GuildConversation, user_id: int, seed: int) -> None:
    pcm = to_int16(speech_like(1.0, 16_000, seed=seed)).tobytes()
    now = time.monotonic()
    conversation.on_heard(user_id, SpeechStarted(at=now, detected_at=now))
    conversation.on_heard(user_id, UtteranceAudio(pcm))
    conversation.on_heard(user_id, UtteranceEnded(duration=1.0, reason="silence", at=now))


async def test_a_chat_that_never_answers_times_out_and_fails_cleanly(
    fake_mistral: FakeMistral, mistral_client: Mistral, tmp_path: Path
) -> None:
    virtual = VirtualSleep()
    retry = RetryPolicy(max_attempts=2, sleep=virtual.sleep, clock=virtual.clock, random=lambda: 0.5)
    notes: list[str] = []

    async def notify(message: str) -> None:
        notes.append(message)

    player = RecordingPlayer()
    script(fake_mistral, QUESTION, ANSWER)
    fake_mistral.faults.stall_next("chat", times=2)
    async with Database.open(f"sqlite:///{tmp_path / 'voxcord.db'}") as db:
        conversation = GuildConversation(
            guild_id=1, database=db,
            transcriber=StreamingTranscriber(mistral_client, realtime_model="voxtral-mini-transcribe-realtime-2602",
                                             batch_model="voxtral-mini-latest", retry=retry),
            chat=ChatModel(mistral_client, model="mistral-small-latest", retry=retry,
                           first_token_timeout=0.5, idle_timeout=0.5),
            synthesizer=SpeechSynthesizer(mistral_client, model="voxtral-mini-tts-2603", retry=retry,
                                          response_format="pcm"),  # the recording player keeps PCM
            player=player, roster=Alone(), notify=notify, bot_name="Voxcord", clock=time.monotonic,
        )
        conversation.start()
        try:
            utter(conversation, 7, seed=1)
            await wait_until(lambda: any(SORRY in note for note in notes))
            # Both attempts were accepted and never answered; one backoff between them.
            assert [r.status for r in fake_mistral.requests_to("chat")] == [None, None]
            assert virtual.sleeps == [0.25]
            assert not player.pcm and not fake_mistral.requests_to("speech")
            # The reply's FFmpeg is spawned once a chat request is answered: none for this one.
            assert player.replies == 0
            assert [(t.role, t.text) for t in await db.turns.recent(1, limit=10)] == [("user", QUESTION)]

            script(fake_mistral, NEXT_QUESTION, NEXT_ANSWER)
            utter(conversation, 7, seed=2)
            async with asyncio.timeout(GUARD_S):
                while True:
                    turns = await db.turns.recent(1, limit=10)
                    if len(turns) >= 3:
                        break
                    await asyncio.sleep(0.05)
            assert [(t.role, t.text) for t in turns[-2:]] == [("user", NEXT_QUESTION), ("assistant", NEXT_ANSWER)]
            assert player.pcm and player.replies == 1
            assert len([note for note in notes if "Sorry" in note]) == 1
        finally:
            async with asyncio.timeout(GUARD_S):
                await conversation.stop()
