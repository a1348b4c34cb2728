"""Entry point: build settings, store and services, inject them into the Bot, run.

``python -m bot`` or the ``voxcord`` console script.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import sys
from collections.abc import AsyncIterator

import aiohttp
import discord
import httpx2
import yarl
from discord.gateway import DiscordWebSocket
from mistralai.client import Mistral
from pydantic import ValidationError

from bot.app import VoxcordBot
from bot.audio.clip import ClipLimits
from bot.audio.ffmpeg import ffmpeg_executable
from bot.config import Settings, describe_settings_error
from bot.conversation.engine import ConversationEngine
from bot.heap import frozen_startup_heap
from bot.limits import (
    CommandLimiter,
    CounterStore,
    LimitSettings,
    MemoryCounterStore,
    PriceTable,
    RateLimiter,
    UsageMeter,
)
from bot.limits.redis_backend import RedisCounterStore, RedisUnavailableError
from bot.logs import setup_logging
from bot.metrics import (
    CountedMeter,
    HealthCheck,
    LoopLagMonitor,
    Metrics,
    RetryMetrics,
    TurnMetrics,
    VoiceMetrics,
    gateway_connected,
    serve_metrics,
)
from bot.mistral import ChatModel, RetryPolicy, SpeechSynthesizer, StreamingTranscriber
from bot.mistral.redaction import install_log_redaction
from bot.mistral.sdk_preload import preload_sdk, warm_sdk
from bot.mistral.sdk_speedups import install_sdk_speedups
from bot.mistral.voices import VoiceRegistry
from bot.services.captions import CaptionsService
from bot.services.clips import VoiceClipService
from bot.services.presence import VoicePresence
from bot.services.privacy import (
    CaptionEraser,
    DiscordCaptionMessages,
    PrivacyService,
    RetentionPurger,
    plain_name,
    service_host,
)
from bot.services.sessions import VoiceSessions
from bot.services.voices import ClipVoices
from bot.store import Database, DatabaseOpenError
from bot.voice.client import VoxcordVoiceClient

log = logging.getLogger("bot")

# SIGTERM must leave voice, flush and exit within 10 s; leave margin for the process to exit.
SHUTDOWN_GRACE_SECONDS = 8.0


def point_discord_at(settings: Settings) -> None:
    """discord.py keeps its REST base and gateway URL on classes; proxies and tests set them here."""
    discord.http.Route.BASE = settings.discord_api_base_url
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


# httpx keeps an idle connection 5 s by default, shorter than the time between two turns, so each
# chat request and each reply's first TTS request paid a new TCP + TLS handshake to Mistral.
# A stale connection the server closed meanwhile is detected and replaced before reuse.
# It also keeps only 20 idle connections and opens at most 100: a guild answering holds up to
# three streams (chat, the sentence playing, the next one prefetched), so at 50 talking guilds
# 96 of 100 TTS requests opened a new connection (bench/scaling.py, traced) and some queued for
# a free one. Concurrency is already bounded by the guilds answering; the pool adds no limit, and
# keeps every connection the busiest moment needed for 55 s: a cap of 100 idle ones re-opened
# connections past ~33 guilds answering at once (75 guilds: bot CPU per turn 68-69 ms with it,
# 64 ms without; docs/decisions.md).
MISTRAL_CONNECTION_LIMITS = httpx2.Limits(max_connections=None, max_keepalive_connections=None, keepalive_expiry=55.0)


def make_tls_context() -> ssl.SSLContext:
    # Built at start-up rather than at import so SSL_CERT_FILE / SSL_CERT_DIR from .env or the
    # environment (a corporate CA) is honoured; verification is never turned off.
    return ssl.create_default_context()


@contextlib.asynccontextmanager
async def assemble(settings: Settings, *, guild_ready_timeout: float = 2.0) -> AsyncIterator[VoxcordBot]:
    """Build store, HTTP session and engine services and inject them into a Bot.

    The tests assemble the bot through this same function, so what they run is what ships.
    """
    point_discord_at(settings)
    tls = make_tls_context()
    # Reads are kept in memory only when no other process writes the database: shard groups
    # and REDIS_URL mean several processes, which may share a guild's rows (tests/bot/test_shared_limits.py).
    database = await Database.open(settings.database_url, sole_writer=settings.sole_process)
    try:
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as http,
            httpx2.AsyncClient(verify=tls, limits=MISTRAL_CONNECTION_LIMITS) as mistral_http,
            contextlib.AsyncExitStack() as stack,
        ):
            # One TLS context, so one parsed trust store (~0.7 MB each): the realtime socket is
            # given it, and so is the sync client the SDK would otherwise build for itself (the bot
            # makes no sync calls; the SDK makes one at construction all the same).
            install_sdk_speedups(tls=tls)  # bot/mistral/sdk_speedups.py: ~10 ms per turn, most of 50 guilds' loop
            mistral = Mistral(
                api_key=settings.mistral_api_key.get_secret_value(),
                server_url=settings.mistral_server_url,
                client=stack.enter_context(httpx2.Client(verify=tls)),
                async_client=mistral_http,
            )
            preload_sdk(mistral)  # the first turn after a start would import ~120 SDK modules on the loop
            # ... and build its first requests cold (bot/mistral/sdk_preload.py): in-process, no request
            await warm_sdk(chat_model=settings.chat_model, tts_model=settings.tts_model)
            # Counted whether or not METRICS_PORT serves them: a counter costs well under a microsecond.
            metrics = Metrics()
            retry = RetryPolicy(
                max_attempts=settings.retry_max_attempts, max_total_seconds=settings.retry_max_total_seconds,
                observer=RetryMetrics(metrics),
            )
            # One process: in-memory buckets. With REDIS_URL, every process (shard group) shares
            # the same buckets and budget counters.
            counters: CounterStore
            if settings.redis_url:
                shared = await stack.enter_async_context(RedisCounterStore.from_url(settings.redis_url))
                await shared.ping()
                counters = shared
            else:
                counters = MemoryCounterStore()
            limiter = RateLimiter(counters)
            limits = LimitSettings.from_settings(settings)
            meter = UsageMeter(
                database=database, store=counters, limiter=limiter, prices=PriceTable.from_settings(settings),
                limits=limits,
            )
            # The notice names where audio goes: the host only, never the URL's credentials or the key.
            # Forget-me and retention reach the caption messages through the bot's REST client;
            # the getter is only called once the bot (built below) is running.
            captions = CaptionsService(database, bot_name=lambda guild: plain_name(guild.me.display_name))
            caption_eraser = CaptionEraser(database=database, messages=DiscordCaptionMessages(lambda: bot),
                                           before_forget=captions.forget_pending)
            privacy = PrivacyService(database=database, stt_host=service_host(settings.mistral_server_url),
                                     captions=caption_eraser)
            engine = ConversationEngine(
                database=database,
                privacy=privacy,
                transcriber=StreamingTranscriber(
                    mistral, realtime_model=settings.stt_model, batch_model=settings.stt_batch_model, retry=retry,
                    final_timeout=settings.stt_final_timeout, turn_detection=settings.stt_turn_detection,
                ),
                chat=ChatModel(
                    mistral, model=settings.chat_model, retry=retry,
                    first_token_timeout=settings.chat_first_token_timeout,
                ),
                # With no clip, the synthesizer picks the preset for the reply's language, else
                # TTS_DEFAULT_VOICE: the engine passes no voice of its own.
                synthesizer=SpeechSynthesizer(
                    mistral, model=settings.tts_model, retry=retry,
                    first_audio_timeout=settings.tts_first_audio_timeout,
                    default_voice=settings.tts_default_voice, voices_by_language=settings.tts_voices_by_language,
                    response_format=settings.tts_format,
                ),
                ffmpeg_executable=ffmpeg_executable(),
                ffmpeg_niceness=settings.ffmpeg_niceness,
                meter=CountedMeter(meter, metrics, meter.prices),
                subscribers=(TurnMetrics(metrics, meter.prices).attach, captions.attach),
                vad=settings.vad,
            )
            voices = ClipVoices(
                database.clips, VoiceRegistry(mistral, retry=retry) if settings.tts_register_voices else None,
                language_of=lambda guild_id: guild_language(database, guild_id),
            )
            stack.push_async_callback(voices.aclose)
            voices.prepare_stored_in_background()  # clips stored before migration 6
            clips = VoiceClipService(
                repository=database.clips,
                http=http,
                on_change=voices.clip_changed,
                limits=ClipLimits(
                    max_bytes=settings.clip_max_bytes, max_input_seconds=settings.clip_max_input_seconds
                ),
            )
            on_start, on_stop = VoiceMetrics(metrics).hooks(engine.start, engine.stop)
            sessions = VoiceSessions(
                voice_client_cls=VoxcordVoiceClient.decoding(settings.voice_decode),
                on_start=on_start, on_stop=on_stop,
            )
            bot = VoxcordBot(
                settings=settings, database=database, sessions=sessions, clips=clips, engine=engine,
                # No connection cap, as discord.py's own connector: each voice call's websocket holds
                # one for the whole call, and aiohttp's default 100 left a bot in ~100 calls unable
                # to answer any interaction (tests/cogs/test_voice_commands.py).
                connector=aiohttp.TCPConnector(ssl=tls, limit=0), guild_ready_timeout=guild_ready_timeout,
                meter=meter, command_limiter=CommandLimiter(database=database, limiter=limiter, limits=limits),
                privacy=privacy, purger=RetentionPurger(database=database, captions=caption_eraser), captions=captions,
                presence=VoicePresence(sessions=sessions, database=database,
                                       idle_leave_seconds=settings.idle_leave_seconds),
            )
            if settings.metrics_port is not None:
                await stack.enter_async_context(LoopLagMonitor(metrics.loop_lag_seconds.observe))
                health = HealthCheck(gateway=lambda: gateway_connected(bot), database=database.schema_version)
                await stack.enter_async_context(
                    serve_metrics(settings.metrics_host, settings.metrics_port, metrics.registry, health)
                )
            stack.enter_context(frozen_startup_heap())  # bot/heap.py: full collections skip all of the above
            yield bot
    finally:
        await database.close()


async def guild_language(database: Database, guild_id: int) -> str | None:
    return (await database.guilds.get(guild_id)).language


async def run(settings: Settings) -> int:
    try:
        async with assemble(settings) as bot:
            return await serve(bot, settings)
    except (OSError, ValueError, DatabaseOpenError, RedisUnavailableError) as error:
        # A database or Redis that cannot be reached, a bad URL: one readable line, not a traceback.
        log.error("Cannot start (%s): %s", type(error).__name__, error)
        return 1


async def serve(bot: VoxcordBot, settings: Settings) -> int:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows loops
            loop.add_signal_handler(sig, stopping.set)
    async with bot:
        runner = asyncio.create_task(bot.start(settings.discord_token.get_secret_value()))
        stopper = asyncio.create_task(stopping.wait())
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            log.info("Shutting down: leaving voice and flushing")
            try:
                await asyncio.wait_for(bot.close(), SHUTDOWN_GRACE_SECONDS)
            except TimeoutError:
                log.warning("Shutdown took longer than %.0f s; exiting anyway", SHUTDOWN_GRACE_SECONDS)
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner
            return 0
        stopper.cancel()
        try:
            runner.result()
        except discord.LoginFailure:
            log.error("Discord refused the token: check DISCORD_TOKEN (Bot tab of the developer portal).")
            return 1
        except discord.PrivilegedIntentsRequired:
            log.error("Discord refused the intents requested; see the README's application setup.")
            return 1
        return 0


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as error:
        print(describe_settings_error(error), file=sys.stderr)
        return 2
    setup_logging(
        settings.log_level,
        secrets=[settings.discord_token.get_secret_value(), settings.mistral_api_key.get_secret_value()],
    )
    install_log_redaction()  # websockets logs handshake headers, Authorization included, at DEBUG
    try:
        return asyncio.run(run(settings))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
