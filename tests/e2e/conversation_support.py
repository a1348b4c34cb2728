"""Shared setup for end-to-end conversation tests: both fakes, the real bot, a user in voice."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.app import VoxcordBot
from bot.store.models import Turn, VoiceClip
from tests.fakes.discord import FakeDiscord
from tests.fakes.mistral import FakeMistral
from tests.fakes.synth import spoken_question  # noqa: F401 - moved to the fakes; kept for imports from here
from tests.fakes.voice import FakeVoiceServer, SimulatedSpeaker
from tests.harness import World, build_world, running_bot, settings_for

TTS_RATE = 24_000


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    mono = samples.astype(np.float64)
    if mono.ndim == 2:
        mono = mono.mean(axis=1)
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(len(mono))))
    return float(np.fft.rfftfreq(len(mono), 1 / rate)[int(np.argmax(spectrum[1:])) + 1])


def ref_audio_of(request_body: dict) -> bytes | None:
    value = request_body.get("ref_audio")
    return base64.b64decode(value) if value else None


@dataclass
class Call:
    """A guild where the bot has joined the voice channel and a simulated user is in it."""

    bot: VoxcordBot
    world: World
    speaker: SimulatedSpeaker
    fake_discord: FakeDiscord
    fake_voice: FakeVoiceServer
    fake_mistral: FakeMistral


@contextlib.asynccontextmanager
async def call_in_progress(
    fake_discord: FakeDiscord, fake_voice: FakeVoiceServer, fake_mistral: FakeMistral, data_dir: Path,
    *, world: World | None = None, bot: VoxcordBot | None = None, seed: int = 0,
    settings: dict[str, object] | None = None,
) -> AsyncIterator[Call]:
    world = world or build_world(fake_discord)
    await fake_discord.set_voice_state(world.guild.id, world.member_id, world.voice.id)
    overrides = settings or {}
    settings = settings_for(
        fake_discord, data_dir, mistral_server_url=fake_mistral.url, mistral_api_key=fake_mistral.api_key,
        **overrides,
    )
    async with contextlib.AsyncExitStack() as stack:
        if bot is None:
            bot = await stack.enter_async_context(running_bot(fake_discord, settings))
        speaker = fake_voice.add_speaker(world.guild.id, world.voice.id, world.member_id, seed=seed)
        reply = await (await fake_discord.invoke(
            guild_id=world.guild.id, user_id=world.member_id, command="join", channel_id=world.text.id,
        )).wait_reply(timeout=20)
        assert "Joined" in reply.content, reply.content
        await fake_voice.wait_connected(world.guild.id)
        await fake_voice.wait_dave_settled(world.guild.id)
        yield Call(bot=bot, world=world, speaker=speaker, fake_discord=fake_discord, fake_voice=fake_voice,
                   fake_mistral=fake_mistral)


async def wait_turns(bot, guild_id: int, count: int, deadline: float = 20.0) -> list[Turn]:
    """The guild's stored turns once there are at least ``count`` (the bot commits them as it goes)."""
    async with asyncio.timeout(deadline):
        while True:
            turns = await bot.database.turns.recent(guild_id, limit=50)
            if len(turns) >= count:
                return turns
            await asyncio.sleep(0.05)


async def prepared_clip(bot, guild_id: int, *, sha256: str | None = None, deadline: float = 20.0) -> VoiceClip:
    """The guild's clip once its background preparation (registration or reference) is stored."""
    async with asyncio.timeout(deadline):
        while True:
            clip = await bot.database.clips.get(guild_id)
            if clip is not None and clip.prepared and (sha256 is None or clip.sha256 != sha256):
                return clip
            await asyncio.sleep(0.05)
