"""Who may interrupt the bot, and when a voice only pauses it (bot/conversation/interruption.py).

The policy runs on a real bus against a scripted reply; timers are short and scripted.
"""

from __future__ import annotations

import asyncio

from bot.conversation import events
from bot.conversation.addressing import AddressingPolicy
from bot.conversation.interruption import Eligibility, InterruptionPolicy

ASKER, OTHER = 7, 8
GRACE = 0.05


class ScriptedReply:
    """A reply to ASKER that is being spoken (audio started) unless told otherwise."""

    def __init__(self, *, audio_started: bool = True) -> None:
        self.calls: list[str] = []
        self.speaking = True
        self.answering_user: int | None = ASKER
        self.audio_started = audio_started

    def pause(self) -> None:
        self.calls.append("pause")

    def resume(self) -> None:
        self.calls.append("resume")

    def interrupt(self) -> None:
        self.calls.append("interrupt")
        self.speaking = False

    def withdraw(self, user_id: int) -> str | None:
        self.calls.append(f"withdraw {user_id}")
        self.speaking = False
        return "What is the capital of"


class Room:
    def __init__(self, *, humans: int = 3, mode: str = "auto", limited: frozenset[int] = frozenset(),
                 audio_started: bool = True) -> None:
        self.bus = events.EventBus()
        self.reply = ScriptedReply(audio_started=audio_started)
        self.withdrawn: list[tuple[int, str]] = []
        policy = AddressingPolicy(mode=mode, wake_words=["Voxcord"])  # type: ignore[arg-type]
        self.policy = InterruptionPolicy(
            bus=self.bus, reply=self.reply, eligibility=lambda: Eligibility(policy, humans),
            rate_limited=lambda user: user in limited, on_withdrawn=lambda u, t: self.withdrawn.append((u, t)),
            onset_grace=GRACE, words_grace=GRACE * 2,
        )

    def onset(self, user: int) -> None:
        self.bus.publish(events.VoiceOnset(guild_id=1, at=0.0, user_id=user))

    def speech(self, user: int) -> None:
        self.bus.publish(events.SpeechStarted(guild_id=1, at=0.2, user_id=user, began_at=0.0))

    def words(self, user: int, text: str) -> None:
        self.bus.publish(events.TranscriptPartial(guild_id=1, at=0.5, user_id=user, text=text))

    def final(self, user: int, text: str) -> None:
        self.bus.publish(events.TranscriptFinal(guild_id=1, at=0.9, user_id=user, text=text, audio_seconds=0.6,
                                                source="realtime"))


async def test_noise_onset_pauses_then_resumes() -> None:
    room = Room()
    room.onset(ASKER)
    assert room.reply.calls == ["pause"]  # at once: the 100 ms goal
    await asyncio.sleep(GRACE * 2)
    assert room.reply.calls == ["pause", "resume"]


async def test_a_backchannel_from_the_member_answered_pauses_then_resumes_and_is_no_turn() -> None:
    room = Room()
    room.onset(ASKER)
    room.speech(ASKER)
    room.words(ASKER, "Mm-hm.")
    assert room.reply.calls == ["pause", "resume"]
    assert room.policy.admits(ASKER, "Mm-hm.") is False  # kept as context, not answered
    room.speech(ASKER)
    assert room.policy.admits(ASKER, "Mm-hm.") is True  # only that utterance


async def test_a_real_turn_from_the_member_answered_stops_the_reply() -> None:
    room = Room()
    room.onset(ASKER)
    room.speech(ASKER)
    room.words(ASKER, "Wait, what about")
    assert room.reply.calls == ["pause", "interrupt"]


async def test_yeah_then_a_question_is_a_real_turn() -> None:
    room = Room()
    room.speech(ASKER)
    room.words(ASKER, "Yeah")
    room.words(ASKER, "Yeah but what about Lyon")
    assert room.reply.calls == ["pause", "resume", "interrupt"]
    assert room.policy.admits(ASKER, "Yeah but what about Lyon")


async def test_confirmed_speech_that_transcribes_to_nothing_resumes() -> None:
    room = Room()
    room.speech(ASKER)
    room.final(ASKER, "")
    assert room.reply.calls == ["pause", "resume"]


async def test_others_talking_among_themselves_neither_pause_nor_stop_it() -> None:
    room = Room(humans=3)
    room.onset(OTHER)
    room.speech(OTHER)
    room.words(OTHER, "Did you feed the cat this morning?")
    room.final(OTHER, "Did you feed the cat this morning?")
    await asyncio.sleep(GRACE * 3)
    assert room.reply.calls == []


async def test_someone_else_who_says_the_bots_name_stops_it() -> None:
    room = Room(humans=3)
    room.speech(OTHER)
    room.words(OTHER, "Voxcord, stop")
    assert room.reply.calls == ["interrupt"]


async def test_in_always_mode_or_alone_anyone_may_interrupt() -> None:
    for room in (Room(humans=3, mode="always"), Room(humans=1)):
        room.onset(OTHER)
        room.speech(OTHER)
        room.words(OTHER, "Tell me more about Paris")
        assert room.reply.calls == ["pause", "interrupt"]


async def test_a_rate_limited_member_never_interrupts() -> None:
    room = Room(limited=frozenset({ASKER}))
    room.onset(ASKER)
    room.speech(ASKER)
    room.words(ASKER, "Wait, what about Lyon")
    assert room.reply.calls == []


async def test_going_on_before_the_first_audio_withdraws_the_reply_and_carries_the_text() -> None:
    room = Room(audio_started=False)
    room.speech(ASKER)
    assert room.reply.calls == [f"withdraw {ASKER}"]
    assert room.withdrawn == [(ASKER, "What is the capital of")]


async def test_nothing_happens_while_the_bot_is_silent() -> None:
    room = Room()
    room.reply.speaking = False
    room.onset(ASKER)
    room.speech(ASKER)
    room.words(ASKER, "Hello there")
    await asyncio.sleep(GRACE * 2)
    assert room.reply.calls == []
