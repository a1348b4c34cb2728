"""The assembled bot runs with its start-up heap frozen (bot/heap.py) and releases it on exit."""

from __future__ import annotations

import gc
from pathlib import Path

from tests.fakes.discord import FakeDiscord
from tests.harness import build_world, running_bot, settings_for


async def test_a_running_bot_keeps_its_start_up_heap_out_of_collections(
    fake_discord: FakeDiscord, fake_discord_env: dict[str, str], tmp_path: Path
) -> None:
    build_world(fake_discord)
    async with running_bot(fake_discord, settings_for(fake_discord, tmp_path)) as bot:
        frozen = gc.get_freeze_count()
        assert frozen > 10_000, frozen  # the imported SDKs alone are well over that
        assert bot.is_ready()
    assert gc.get_freeze_count() == 0
