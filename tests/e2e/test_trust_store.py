"""The bot parses the trust store once: one TLS context for Discord, Mistral's HTTP and its realtime socket.

Each context built from the system roots holds a parsed copy of all ~140 of them (~0.7 MB of RSS
each, and ~55 ms of CPU to build); the bot's idle memory has a goal of 150 MB (docs/benchmarks.md,
Memory). Counted from the start of ``assemble`` through one spoken turn (the realtime socket, a
chat stream and speech streams), on the client side: the fakes' own server contexts do not count.
"""

from __future__ import annotations

import ssl
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conversation_support import call_in_progress, wait_turns
from tests.fakes.discord import FakeDiscord
from tests.fakes.mistral import FakeMistral
from tests.fakes.synth import spoken_question
from tests.fakes.voice import FakeVoiceServer
from tests.harness import build_world

# The two ways a client context gets its roots: ``create_default_context()`` (``load_default_certs``
# -> ``set_default_verify_paths``, or ``load_verify_locations`` with a cafile) and httpcore2's
# ``default_ssl_context`` (``load_verify_locations`` with the compiled-in paths).
STORE_LOADS = ("set_default_verify_paths", "load_verify_locations")


def count_client_store_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Where each client-side trust store load came from (the innermost frames outside ssl.py)."""
    loads: list[str] = []

    def spying(load: Callable[..., Any]) -> Callable[..., Any]:
        def spy(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> Any:
            if self.protocol != ssl.PROTOCOL_TLS_SERVER:
                frames = [f for f in traceback.extract_stack()[:-1] if not f.filename.endswith("/ssl.py")]
                loads.append(" <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(frames[-6:])))
            return load(self, *args, **kwargs)
        return spy

    for name in STORE_LOADS:
        monkeypatch.setattr(ssl.SSLContext, name, spying(getattr(ssl.SSLContext, name)))
    return loads


async def test_a_start_and_a_spoken_turn_parse_the_trust_store_once(
    fake_discord: FakeDiscord, fake_voice: FakeVoiceServer, fake_mistral: FakeMistral,
    fake_discord_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_mistral.transcribe = lambda _audio: "What is the capital of France?"
    fake_mistral.reply = lambda _messages: "Paris."
    world = build_world(fake_discord)
    loads = count_client_store_loads(monkeypatch)  # after the fakes started: their contexts are theirs
    async with call_in_progress(fake_discord, fake_voice, fake_mistral, tmp_path, world=world) as call:
        await call.speaker.speak(spoken_question())
        turns = await wait_turns(call.bot, world.guild.id, 2)
    assert [t.role for t in turns[-2:]] == ["user", "assistant"]
    assert fake_mistral.realtime_sessions and fake_mistral.requests_to("chat") and fake_mistral.requests_to("speech")
    assert len(loads) == 1, "\n".join(loads)  # make_tls_context in bot/__main__.py
