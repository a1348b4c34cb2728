"""Voxtral STT, Mistral chat and Voxtral TTS over one injected ``mistralai`` client."""

from .chat import ChatMessage, ChatModel, ChatStream, ChatUsage
from .errors import MistralError, RateLimited, RequestRejected, ServiceTimeout, ServiceUnavailable
from .redaction import install_log_redaction
from .retry import NO_SDK_RETRIES, RetryPolicy
from .stt import StreamingTranscriber
from .stt_types import SessionOptions, Transcript, TurnDetectionSettings, TurnEvent
from .tts import SpeechSynthesizer

__all__ = [
    "NO_SDK_RETRIES",
    "ChatMessage",
    "ChatModel",
    "ChatStream",
    "ChatUsage",
    "MistralError",
    "RateLimited",
    "RequestRejected",
    "RetryPolicy",
    "ServiceTimeout",
    "ServiceUnavailable",
    "SessionOptions",
    "SpeechSynthesizer",
    "StreamingTranscriber",
    "Transcript",
    "TurnDetectionSettings",
    "TurnEvent",
    "install_log_redaction",
]
