"""The real Voxcord bot, assembled exactly as ``python -m bot`` does, logged in to the fakes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from bot.__main__ import assemble
from bot.app import VoxcordBot
from bot.config import Settings
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.fixtures import running_client
from tests.fakes.discord.model import ALL_PERMISSIONS
from tests.fakes.discord.world import TEST_DISCORD_TOKEN, TEST_MISTRAL_KEY, World, build_world


def settings_for(fake: FakeDiscord, data_dir: Path, **overrides: object) -> Settings:
    env = fake.settings_env()
    values: dict[str, object] = {
        "discord_token": TEST_DISCORD_TOKEN,
        "mistral_api_key": TEST_MISTRAL_KEY,
        "database_url": f"sqlite:///{data_dir / 'voxcord.db'}",
        "discord_api_base_url": env["DISCORD_API_BASE_URL"],
        "discord_gateway_url": env["DISCORD_GATEWAY_URL"],
        # The e2e stand-in voice (tests/fakes/synth.speech_like, a harmonic series) is speech to
        # Silero only ~90 % of the time, with gaps up to 0.8 s that would end utterances; the
        # numpy VAD was calibrated on it. Tests of who is heard use real speech and vad="silero"
        # (tests/bot/audio/test_vad_silero.py; the rooms of issue 12).
        "vad": "spectral",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@contextlib.asynccontextmanager
async def running_bot(fake: FakeDiscord, settings: Settings) -> AsyncIterator[VoxcordBot]:
    """Needs SSL_CERT_FILE pointing at the fake's CA (the ``fake_discord_env`` fixture sets it)."""
    async with assemble(settings, guild_ready_timeout=0.2) as bot, running_client(
        fake, bot, token=settings.discord_token.get_secret_value()
    ):
        yield bot


__all__ = ["ALL_PERMISSIONS", "TEST_DISCORD_TOKEN", "TEST_MISTRAL_KEY", "World", "build_world",
           "running_bot", "settings_for"]
