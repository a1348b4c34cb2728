"""A loopback Discord (REST, main gateway, interactions, attachment CDN) for the real discord.py client.

See ``server.FakeDiscord`` for the entry point and ``fixtures`` for pytest fixtures.
"""

from __future__ import annotations

from .commands import Attachment
from .interactions import Answer, InteractionRecord, Reply
from .messages import EPHEMERAL, UploadedFile
from .model import FakeChannel, FakeGuild, FakeMember, FakeRole, FakeUser, Overwrite, VoiceState
from .rest import RecordedRequest
from .server import FakeDiscord, routed_to
from .voice_states import VoiceServerLike

__all__ = [
    "EPHEMERAL",
    "Answer",
    "Attachment",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeMember",
    "FakeRole",
    "FakeUser",
    "InteractionRecord",
    "Overwrite",
    "RecordedRequest",
    "Reply",
    "UploadedFile",
    "VoiceServerLike",
    "VoiceState",
    "routed_to",
]
