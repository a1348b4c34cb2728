"""A tentative voice onset pauses the reply at once; noise resumes it, confirmed speech interrupts it."""

from __future__ import annotations

import asyncio
from unittest.mock import create_autospec

from bot.audio.utterances import SpeechStarted, VoiceOnset
from bot.conversation.guild import GuildConversation
from bot.conversation.turn_detection import LocalTurnDetection
from bot.mistral import ChatModel, SpeechSynthesizer, StreamingTranscriber
from bot.store import Database


class ScriptedPlayer:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.playing = True
        self.first_packet_sent_at = None
        self.played_seconds = 0.0

    def pause(self) -> None:
        self.calls.append("pause")

    def resume(self) -> None:
        self.calls.append("resume")

    def interrupt(self) -> float:
        self.calls.append("interrupt")
        self.playing = False
        return 0.0


def conversation(player: ScriptedPlayer) -> GuildConversation:
    return GuildConversation(
        guild_id=1, database=create_autospec(Database, instance=True),
        transcriber=create_autospec(StreamingTranscriber, instance=True),
        chat=create_autospec(ChatModel, instance=True), synthesizer=create_autospec(SpeechSynthesizer, instance=True),
        player=player, roster=None, notify=None, bot_name="Voxcord", clock=lambda: 0.0,
        turn_detection=LocalTurnDetection(onset_grace=0.05),  # a short grace, scripted
    )


async def test_noise_onset_pauses_then_resumes() -> None:
    player = ScriptedPlayer()
    talk = conversation(player)
    talk.on_heard(7, VoiceOnset(at=0.0))
    assert player.calls == ["pause"]
    await asyncio.sleep(0.1)
    assert player.calls == ["pause", "resume"]
    await talk.stop()


async def test_confirmed_speech_after_an_onset_does_not_resume() -> None:
    player = ScriptedPlayer()
    talk = conversation(player)
    talk.on_heard(7, VoiceOnset(at=0.0))
    talk.answering._answering = asyncio.get_running_loop().create_future()  # a reply is under way
    talk.on_heard(7, SpeechStarted(at=0.0, detected_at=0.2))
    await asyncio.sleep(0.1)
    assert player.calls[:2] == ["pause", "interrupt"]
    assert "resume" not in player.calls
    await talk.stop()


async def test_an_onset_while_silent_does_nothing() -> None:
    player = ScriptedPlayer()
    player.playing = False
    talk = conversation(player)
    talk.on_heard(7, VoiceOnset(at=0.0))
    await asyncio.sleep(0.1)
    assert player.calls == []
    await talk.stop()
