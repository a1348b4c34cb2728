"""The whole stack on loopback for the benchmarks: the fakes here, the real bot in a subprocess.

The fake Discord (gateway, REST, voice server with real DAVE groups) and the fake Mistral run on
this process's event loop; the bot runs ``bench.botproc`` (``assemble(settings)``, as shipped) in
its own process, so the fakes' CPU does not land on the bot's event loop. Both processes read
``time.monotonic()`` (CLOCK_MONOTONIC), so timestamps from either side compare directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.shards import process_env, shared_services, spread_guild_ids
from bot.sharding import shard_of
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.world import TEST_DISCORD_TOKEN, World, build_world
from tests.fakes.mistral import FakeMistral
from tests.fakes.synth import spoken_question
from tests.fakes.tls import make_test_certificates
from tests.fakes.voice import FakeVoiceServer, SimulatedSpeaker
from tests.fakes.voice.audio import encode_opus

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "@@"


@dataclass
class Member:
    """A guild with a simulated user in its voice channel, and when each of their packets left."""

    world: World
    speaker: SimulatedSpeaker
    sent_at: list[float] = field(default_factory=list)

    @property
    def guild_id(self) -> int:
        return self.world.guild.id


def timed_speaker(speaker: SimulatedSpeaker, sent_at: list[float]) -> None:
    """Record ``time.monotonic()`` as each datagram of ``speaker`` goes onto the socket."""
    send = speaker._send

    def _send(packet: bytes) -> None:
        send(packet)
        sent_at.append(time.monotonic())

    speaker._send = _send  # type: ignore[method-assign]


def utterance_opus(seconds: float, seed: int) -> list[bytes]:
    """A simulated user's question, pre-encoded once so the fakes spend no CPU on it per turn."""
    return encode_opus(spoken_question(seconds, seed=seed))


class BotProcess:
    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process = process
        self.log = log
        self.pid = process.pid
        self._lock = asyncio.Lock()

    async def _line(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        while True:
            raw = await self.process.stdout.readline()
            if not raw:
                raise RuntimeError("bot process exited; see its stderr log")
            text = raw.decode()
            if text.startswith(PREFIX):
                return json.loads(text[len(PREFIX):])

    async def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        async with self._lock:
            assert self.process.stdin is not None
            self.process.stdin.write((json.dumps({"cmd": cmd, **args}) + "\n").encode())
            await self.process.stdin.drain()
            return await self._line()

    async def turns(self, guild_id: int) -> list[dict[str, float]]:
        return (await self.call("timings", guild=guild_id))["turns"]

    def rss_mb(self) -> float:
        return rss_mb(self.pid)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@dataclass
class Stack:
    """``bots``: one process per shard group (bench/shards.py); ``bot`` is the first, the only
    one unless ``running_stack(processes=N)``. A guild's commands and voice reach ``bot_for(it)``."""

    fake_discord: FakeDiscord
    fake_voice: FakeVoiceServer
    fake_mistral: FakeMistral
    bot: BotProcess
    worlds: list[World]
    workdir: Path
    seated: Any = None
    bots: list[BotProcess] = field(default_factory=list)
    services_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.bots = self.bots or [self.bot]

    def bot_for(self, guild_id: int) -> BotProcess:
        """The process whose shard Discord routes the guild to."""
        return self.bots[shard_of(guild_id, len(self.bots))]

    def rss_mb(self) -> float:
        return sum(bot.rss_mb() for bot in self.bots)

    async def join(self, world: World, *, seed: int = 0) -> Member:
        """The simulated user is in the voice channel; /join brings the bot in; DAVE settles."""
        speaker = self.fake_voice.add_speaker(world.guild.id, world.voice.id, world.member_id, seed=seed)
        member = Member(world, speaker)
        timed_speaker(speaker, member.sent_at)
        reply = await (await self.fake_discord.invoke(
            guild_id=world.guild.id, user_id=world.member_id, command="join", channel_id=world.text.id,
        )).wait_reply(timeout=60)
        if "Joined" not in reply.content:
            raise RuntimeError(f"/join answered {reply.content!r}")
        await self.fake_voice.wait_connected(world.guild.id)
        await self.fake_voice.wait_dave_settled(world.guild.id)
        return member


@contextlib.asynccontextmanager
async def running_stack(guilds: int = 1, *, log_name: str = "bot", env_overrides: dict[str, str] | None = None,
                        seat: Callable[[FakeDiscord], Awaitable[object]] | None = None,
                        processes: int = 1, store: str | None = None) -> AsyncIterator[Stack]:
    """``seat`` sets up more guilds on the fake Discord before the bot connects (its result is
    ``Stack.seated``); ``env_overrides`` adds to the bot processes' environment; ``processes``
    runs that many shard-group bot processes on a shared PostgreSQL and Redis, ``store`` chooses
    the database (bench/shards.py: ``shared_services``)."""
    workdir = Path(tempfile.mkdtemp(prefix="voxcord-bench-"))
    certs = make_test_certificates(workdir / "tls")
    async with contextlib.AsyncExitStack() as stack:
        services = stack.enter_context(shared_services(processes, store))
        fake_discord = await stack.enter_async_context(FakeDiscord(certs))
        fake_voice = await stack.enter_async_context(FakeVoiceServer(certs))
        fake_discord.attach_voice_server(fake_voice)
        # HTTPS and WSS with the fake Discord's CA, as api.mistral.ai serves them: the bot's
        # Mistral client pays its TLS handshakes and record crypto here as in production.
        fake_mistral = await stack.enter_async_context(FakeMistral(certs))
        if processes == 1:
            worlds = [build_world(fake_discord, f"Guild {i}") for i in range(guilds)]
        else:
            ids = spread_guild_ids(fake_discord.snowflakes.next, guilds, processes)
            worlds = [build_world(fake_discord, f"Guild {i}", guild_id=gid) for i, gid in enumerate(ids)]
        for world in worlds:
            await fake_discord.set_voice_state(world.guild.id, world.member_id, world.voice.id)
        seated = await seat(fake_discord) if seat is not None else None
        env = {
            **os.environ,
            **fake_discord.settings_env(),
            # The system roots plus the test CA: a trust store as large as production's
            # (tests/fakes/tls.py: TestCertificates.system_bundle).
            "SSL_CERT_FILE": str(certs.system_bundle()),
            "DISCORD_TOKEN": TEST_DISCORD_TOKEN,
            "MISTRAL_API_KEY": fake_mistral.api_key,
            "MISTRAL_SERVER_URL": fake_mistral.url,
            "DATABASE_URL": f"sqlite:///{workdir / 'voxcord.db'}",
            # The product's voice-turn limits (8 a minute per member by default) would refuse the
            # benchmark's back-to-back questions: a full run once lost a barge-in reply to them.
            "RATE_USER_TURNS_PER_MINUTE": "600",
            "RATE_GUILD_TURNS_PER_MINUTE": "600",
            # The simulated voice (tests/fakes/synth.spoken_question, a harmonic series) is speech
            # to Silero only ~90 % of the time: with the default VAD it splits or cuts 12 of 40
            # questions short. SpectralVad was calibrated on it; Silero's cost is bench.vad's.
            "VAD": "spectral",
            **services,
            **(env_overrides or {}),
        }
        bots = []
        for index in range(processes):
            name = log_name if processes == 1 else f"{log_name}-{index}"
            bots.append(await _start_bot(stack, {**env, **process_env(index, processes)}, workdir / f"{name}.log"))
        # Started together, as a deployment's processes are: the first applies the migrations
        # under PostgreSQL's advisory lock while the others wait for it.
        await asyncio.gather(*(_wait_ready(bot) for bot in bots))
        yield Stack(fake_discord, fake_voice, fake_mistral, bots[0], worlds, workdir, seated, bots, services)


async def _start_bot(stack: contextlib.AsyncExitStack, env: dict[str, str], log: Path) -> BotProcess:
    stderr = log.open("wb")
    stack.callback(stderr.close)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.botproc", cwd=ROOT, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=stderr,
    )
    bot = BotProcess(process, log)

    async def stop_bot() -> None:
        if process.returncode is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(bot.call("quit"), 15)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 15)
            if process.returncode is None:
                process.kill()
                await process.wait()

    stack.push_async_callback(stop_bot)
    return bot


async def _wait_ready(bot: BotProcess) -> None:
    try:
        ready = await asyncio.wait_for(bot._line(), 60)
    except Exception as error:
        raise RuntimeError(f"bot did not start; log: {bot.log}") from error
    assert ready.get("ready"), ready
