"""The naive sequential design, as a baseline for the streaming engine (issue 5, benchmark 2).

Per utterance: wait for its end → batch transcription of the whole WAV → the full chat reply
(not streamed) → the whole reply as one TTS file → play that file through ``FFmpegOpusAudio``
(FFmpeg probes and encodes the file). It reuses the real bot's receive path and utterance
segmenter (``Hearing``), so both designs see the end of speech at the same moment and differ
only in what happens after it. Runs inside the bot process (bench/botproc.py), for the guilds
the benchmark names: ``ConversationEngine.start`` hands those guilds to this class instead.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
from mistralai.client import Mistral
from mistralai.client.models import File

from bot.audio.ffmpeg import ffmpeg_executable
from bot.audio.utterances import Event, SpeechStarted, UtteranceAudio, UtteranceEnded
from bot.audio.wav import pcm16_to_wav
from bot.conversation.hearing import Hearing
from bot.conversation.timings import TimingsLog, TurnTimings
from bot.voice.client import VoxcordVoiceClient

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.services.sessions import VoiceSession

SYSTEM_PROMPT = "You are a friendly voice assistant in a Discord voice channel. Answer briefly."


class _TimedOpusAudio(discord.FFmpegOpusAudio):
    """``FFmpegOpusAudio`` that remembers when discord.py took its first packet."""

    first_read_at: float | None = None

    def read(self) -> bytes:
        packet = super().read()
        if packet and self.first_read_at is None:
            self.first_read_at = time.monotonic()
        return packet


class SequentialConversation:
    """A ``HearingConsumer`` that answers each utterance with the naive four-step pipeline."""

    def __init__(self, voice_client: discord.VoiceClient, client: Mistral, settings: Settings,
                 timings: TimingsLog, workdir: Path) -> None:
        self._voice = voice_client
        self._client = client
        self._settings = settings
        self._ffmpeg = ffmpeg_executable()
        self.timings = timings
        self._workdir = workdir
        self._audio: dict[int, bytearray] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._replies = 0

    def on_heard(self, user_id: int, event: Event) -> None:
        if isinstance(event, SpeechStarted):
            self._audio[user_id] = bytearray()
        elif isinstance(event, UtteranceAudio):
            if user_id in self._audio:
                self._audio[user_id] += event.pcm
        elif isinstance(event, UtteranceEnded):
            pcm = self._audio.pop(user_id, None)
            if pcm:
                timings = TurnTimings(clock=time.monotonic)
                timings.mark("speech_end")
                task = asyncio.get_running_loop().create_task(self._answer(bytes(pcm), timings))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _answer(self, pcm: bytes, timings: TurnTimings) -> None:
        settings = self._settings
        try:
            transcript = await self._client.audio.transcriptions.complete_async(
                model=settings.stt_batch_model,
                file=File(file_name="utterance.wav", content=pcm16_to_wav(pcm, sample_rate=16_000),
                          content_type="audio/wav"),
            )
            timings.mark("transcript_final")
            chat = await self._client.chat.complete_async(
                model=settings.chat_model, max_tokens=200,
                messages=[{"role": "system", "content": SYSTEM_PROMPT},
                          {"role": "user", "content": transcript.text}],
            )
            timings.mark("first_token")
            timings.mark("first_sentence")
            reply = str(chat.choices[0].message.content)
            speech = await self._client.audio.speech.complete_async(
                input=reply, model=settings.tts_model, response_format="wav")
            timings.mark("first_tts_audio")
            self._replies += 1
            path = self._workdir / f"reply-{id(self)}-{self._replies}.wav"
            path.write_bytes(base64.b64decode(speech.audio_data))  # type: ignore[union-attr]
            source = _TimedOpusAudio(str(path), executable=self._ffmpeg)
            loop = asyncio.get_running_loop()
            played = asyncio.Event()
            self._voice.play(source, after=lambda _error: loop.call_soon_threadsafe(played.set))
            await played.wait()
            timings.mark_at("first_packet_sent", source.first_read_at)
            timings.mark("done")
            path.unlink(missing_ok=True)
        finally:
            self.timings.add(timings)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task


@dataclass
class SequentialMode:
    """Which guilds get the baseline, and their timings (the engine's own log stays streaming-only)."""

    guilds: set[int] = field(default_factory=set)
    timings: dict[int, TimingsLog] = field(default_factory=dict)

    def add(self, guild_id: int) -> None:
        self.guilds.add(guild_id)


def install_sequential(engine_cls: Any, settings: Settings) -> SequentialMode:
    """Route ``engine_cls.start`` / ``stop`` for the guilds in the returned mode to the baseline."""
    mode = SequentialMode()
    original_start: Callable[..., Any] = engine_cls.start
    original_stop: Callable[..., Any] = engine_cls.stop
    running: dict[int, tuple[Hearing, SequentialConversation]] = {}
    workdir = Path(tempfile.mkdtemp(prefix="voxcord-seq-"))
    clients: list[Mistral] = []

    async def start(self: Any, session: VoiceSession) -> None:
        if session.guild_id not in mode.guilds:
            await original_start(self, session)
            return
        if not clients:
            clients.append(Mistral(api_key=settings.mistral_api_key.get_secret_value(),
                                   server_url=settings.mistral_server_url))
        log = mode.timings.setdefault(session.guild_id, TimingsLog())
        conversation = SequentialConversation(session.voice_client, clients[0], settings, log, workdir)
        # The same voice activity detector as the streaming guilds (the engine's, from VAD=...).
        hearing = Hearing(conversation, vad_factory=await self._vad_factory())
        hearing.start()
        if isinstance(session.voice_client, VoxcordVoiceClient):
            session.voice_client.start_receiving(hearing)
        running[session.guild_id] = (hearing, conversation)

    async def stop(self: Any, session: VoiceSession) -> None:
        pair = running.pop(session.guild_id, None)
        if pair is None:
            await original_stop(self, session)
            return
        if isinstance(session.voice_client, VoxcordVoiceClient):
            session.voice_client.stop_receiving()
        await pair[0].stop()
        await pair[1].stop()

    engine_cls.start = start
    engine_cls.stop = stop
    return mode
