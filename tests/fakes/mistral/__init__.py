"""A loopback fake of the Mistral API for tests; see ``server.FakeMistral``."""

from .audio import TTS_SAMPLE_RATE, default_transcript, speech_samples, wav_bytes
from .server import FakeMistral, default_reply
from .state import Fault, Faults, Latency, RealtimeSession, RecordedRequest
from .turns import TurnModel, is_voxtral_3_realtime, looks_complete

__all__ = [
    "TTS_SAMPLE_RATE",
    "FakeMistral",
    "Fault",
    "Faults",
    "Latency",
    "RealtimeSession",
    "RecordedRequest",
    "TurnModel",
    "default_reply",
    "default_transcript",
    "is_voxtral_3_realtime",
    "looks_complete",
    "speech_samples",
    "wav_bytes",
]
