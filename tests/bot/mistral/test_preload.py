"""The first turn after a start imports nothing: preload_sdk loaded it before the bot logged in."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("first_turn_imports.py")


def first_turn_imports(*args: str) -> list[str]:
    # A fresh interpreter: in this one, earlier tests have imported everything already.
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_preloaded_sdk_imports_nothing_during_the_first_turn() -> None:
    assert first_turn_imports("--preload") == []


def test_without_the_preload_the_first_turn_imports_the_sdk_on_the_event_loop() -> None:
    # The control: the check above sees lazy imports when they happen.
    lazily = first_turn_imports()
    assert any(name.startswith("mistralai.client.models.") for name in lazily)
    assert "mistralai.client.chat" in lazily and "mistralai.client.speech" in lazily
