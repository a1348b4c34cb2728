"""Loopback Discord voice server (voice gateway v8 over TLS, UDP, real DAVE) for tests."""

from tests.fakes.voice.recording import BotAudio, BotFrame
from tests.fakes.voice.server import FakeVoiceServer
from tests.fakes.voice.session import BotSession
from tests.fakes.voice.speaker import SentFrame, SimulatedSpeaker

__all__ = ["BotAudio", "BotFrame", "BotSession", "FakeVoiceServer", "SentFrame", "SimulatedSpeaker"]
