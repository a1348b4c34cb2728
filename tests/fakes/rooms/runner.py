"""Play a scripted room through the fakes and keep a trace of what everyone did.

    world = await seat(fake_discord, room)          # before the bot connects (guild in READY)
    ... start the bot (in process for tests, a subprocess for bench.room) ...
    trace = await play(room, world, fakes)           # /join, the cues, until the room is quiet
    outcome = score(room, trace)                     # tests.fakes.rooms.scoring

The fake Mistral is scripted for the room while it plays: ``TranscriptOracle`` transcribes, chat
answers an addressed cue with the cue's ``answer`` and anything else with "You said ...", and the
standard injected latencies apply (chat first token 300 ms then 30 tokens/s, TTS first audio
300 ms then real time, STT final 200 ms). Rooms share the fake Mistral: play them one at a time.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.world import World, build_world
from tests.fakes.mistral import FakeMistral
from tests.fakes.mistral.audio import SECONDS_PER_CHARACTER, TTS_SAMPLE_RATE
from tests.fakes.mistral.state import Latency, RealtimeSession, RecordedRequest
from tests.fakes.rooms.oracle import Segment, TranscriptOracle, reference_16k
from tests.fakes.rooms.scenarios import Cue, DuringReply, Pause, Room, Words
from tests.fakes.rooms.sounds import music, speech
from tests.fakes.voice import BotFrame, FakeVoiceServer, SimulatedSpeaker
from tests.fakes.voice.audio import encode_opus
from tests.fakes.voice.rtp import OPUS_SILENCE

CHAT_FIRST_TOKEN = 0.300
TOKENS_PER_S = 30.0
TTS_FIRST_AUDIO = 0.300
STT_FINAL = 0.200
QUIET_S = 2.5  # the room is over once nothing happened for this long
ROOM_GUARD_S = 90.0  # hang guard only
REPLY_WAIT_S = 15.0  # a DuringReply cue is skipped when its reply never starts
STALE_S = 20.0  # a request still streaming after this long is not what keeps the room busy


def standard_latency(fake: FakeMistral) -> Latency:
    chunk_seconds = fake.tts_chunk_bytes / 4 / TTS_SAMPLE_RATE  # float32 mono at 24 kHz
    return Latency(stt_final=STT_FINAL, chat_first_token=CHAT_FIRST_TOKEN, chat_tokens_per_s=TOKENS_PER_S,
                   tts_first_audio=TTS_FIRST_AUDIO, tts_chunk_interval=chunk_seconds)


# -- the words said in chat requests -------------------------------------------------------------


def words_of(text: str) -> list[str]:
    return re.findall(r"[\w'-]+", text.lower())


def user_text(chat_body: dict[str, Any]) -> str:
    """What the person said, from a chat request: the last line of the last user message,
    without the "name: " prefix that bot/conversation/prompt.py puts there."""
    users = [m for m in chat_body.get("messages", []) if m.get("role") == "user"]
    if not users:
        return ""
    content = users[-1].get("content")
    text = content if isinstance(content, str) else " ".join(str(c.get("text", "")) for c in content or [])
    last = text.strip().splitlines()[-1] if text.strip() else ""
    return last.split(": ", 1)[1] if ": " in last else last


def answer_for(room: Room, said: str) -> str:
    said_words = words_of(said)
    for cue in room.cues:
        if cue.answer is not None and words_of(cue.text) == said_words:
            return cue.answer
    return f"You said {' '.join(said_words) or 'nothing'}."


# -- setting the room up ------------------------------------------------------------------------


@dataclass(slots=True)
class Seated:
    world: World
    ids: dict[str, int]  # person key -> user id

    @property
    def guild_id(self) -> int:
        return self.world.guild.id


async def seat(fake: FakeDiscord, room: Room) -> Seated:
    """The guild and its members, all in the voice channel. Call before the bot connects."""
    world = build_world(fake, f"room {room.name}")
    ids: dict[str, int] = {}
    known = {"bob": world.member_id, "alice": world.admin_id}
    for person in room.people:
        user_id = known.get(person.key)
        if user_id is None:
            user_id = fake.snowflakes.next()
            world.guild.add_member(user_id, person.name, bot=person.bot)
        ids[person.key] = user_id
        await fake.set_voice_state(world.guild.id, user_id, world.voice.id)
    return Seated(world, ids)


@dataclass(slots=True)
class Sound:
    cue: str
    opus: list[bytes]  # what the member's client sends (pauses are gaps between Sounds)


def prepare(room: Room, oracle: TranscriptOracle) -> dict[str, list[Sound | float]]:
    """Opus for every cue part, encoded before the room starts; the oracle learns each one."""
    script: dict[str, list[Sound | float]] = {}
    for cue in room.cues:
        person = room.person(cue.who)
        steps: list[Sound | float] = []
        for part in cue.parts:
            if isinstance(part, Pause):
                steps.append(part.seconds)
                continue
            pcm = speech(person, part) if isinstance(part, Words) else music(part)
            opus = encode_opus(pcm)
            text = part.text if isinstance(part, Words) else part.heard_as
            language = part.language if isinstance(part, Words) else "en"
            oracle.add(Segment(cue.name, cue.kind, text, language, reference_16k(opus)))
            steps.append(Sound(cue.name, opus))
        script[cue.name] = steps
    return script


# -- the trace ----------------------------------------------------------------------------------


@dataclass(slots=True)
class SentPart:
    first: float  # time.monotonic() the part's first packet left the member's socket
    last_voiced: float  # its last audio packet (the five Opus-silence frames come after)
    last: float


@dataclass(slots=True)
class Trace:
    room: Room
    oracle: TranscriptOracle
    started: float
    sent: dict[str, list[SentPart]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    frames: list[BotFrame] = field(default_factory=list)  # the bot's audio while the room played
    chats: list[RecordedRequest] = field(default_factory=list)
    speech: list[RecordedRequest] = field(default_factory=list)
    sessions: list[RealtimeSession] = field(default_factory=list)
    tts_seconds_per_character: float = SECONDS_PER_CHARACTER

    def cue_end(self, name: str) -> float | None:
        parts = self.sent.get(name)
        return parts[-1].last_voiced if parts else None


def _audio_frames(frames: list[BotFrame], after: float) -> list[float]:
    return [f.received_at for f in frames if f.opus != OPUS_SILENCE and f.received_at > after]


class _Clock:
    """Send times per member: wraps the speaker's datagram send (as bench/stack.py does)."""

    def __init__(self, speaker: SimulatedSpeaker) -> None:
        self.sent_at: list[float] = []
        send = speaker._send

        def timed(packet: bytes) -> None:
            send(packet)
            self.sent_at.append(time.monotonic())

        speaker._send = timed  # type: ignore[method-assign]


async def play(room: Room, seated: Seated, *, fake_discord: FakeDiscord, fake_voice: FakeVoiceServer,
               fake_mistral: FakeMistral, join_timeout: float = 60.0) -> Trace:
    """/join by the room's first person, then every cue on its schedule, until the room is quiet."""
    oracle = TranscriptOracle()
    script = prepare(room, oracle)
    world, guild_id = seated.world, seated.guild_id
    speakers: dict[str, SimulatedSpeaker] = {}
    clocks: dict[str, _Clock] = {}
    for index, person in enumerate(room.people):
        speaker = fake_voice.add_speaker(guild_id, world.voice.id, seated.ids[person.key], seed=index + 1)
        speakers[person.key], clocks[person.key] = speaker, _Clock(speaker)

    def transcribe(pcm: bytes) -> str:
        heard = oracle.hear(pcm)
        fake_mistral.language = heard.language or "en"
        return heard.text

    fake_mistral.transcribe = transcribe
    fake_mistral.reply = lambda messages: answer_for(room, user_text({"messages": messages}))
    fake_mistral.latency = standard_latency(fake_mistral)
    first = len(fake_mistral.requests)
    first_session = len(fake_mistral.realtime_sessions)

    reply = await (await fake_discord.invoke(guild_id=guild_id, user_id=seated.ids[room.people[0].key],
                                             command="join", channel_id=world.text.id)).wait_reply(timeout=join_timeout)
    if "Joined" not in reply.content:
        raise RuntimeError(f"/join answered {reply.content!r}")
    await fake_voice.wait_connected(guild_id)
    await fake_voice.wait_dave_settled(guild_id)
    for command, options in room.settings.items():
        await (await fake_discord.invoke(guild_id=guild_id, user_id=world.admin_id, command=command,
                                         options=dict(options), channel_id=world.text.id)).wait_reply(timeout=20)

    audio = fake_voice.bot_audio(guild_id)
    frames_before = len(audio.frames)
    trace = Trace(room, oracle, time.monotonic(), tts_seconds_per_character=(
        fake_mistral.tts_seconds_per_character or SECONDS_PER_CHARACTER))

    async def perform(cue: Cue) -> None:
        if isinstance(cue.at, DuringReply):
            if not await _reply_started(trace, audio.frames, cue.at):
                trace.skipped.append(cue.name)
                return
        else:
            await asyncio.sleep(max(0.0, trace.started + cue.at - time.monotonic()))
        speaker, clock = speakers[cue.who], clocks[cue.who]
        for step in script[cue.name]:
            if isinstance(step, float):
                speaker.pause(step)  # the media clock runs on while the client sends nothing
                await asyncio.sleep(step)
                continue
            mark = len(clock.sent_at)
            await speaker.speak_opus(step.opus)
            sent = clock.sent_at[mark:]
            trace.sent.setdefault(cue.name, []).append(SentPart(sent[0], sent[len(step.opus) - 1], sent[-1]))

    async with asyncio.timeout(ROOM_GUARD_S):
        await asyncio.gather(*(perform(cue) for cue in room.cues))
        await _until_quiet(trace, audio.frames, fake_mistral, first)
    trace.frames = list(audio.frames[frames_before:])
    trace.chats = [r for r in fake_mistral.requests[first:] if r.endpoint == "chat"]
    trace.speech = [r for r in fake_mistral.requests[first:] if r.endpoint == "speech"]
    trace.sessions = list(fake_mistral.realtime_sessions[first_session:])
    return trace


async def _reply_started(trace: Trace, frames: list[BotFrame], during: DuringReply) -> bool:
    deadline = time.monotonic() + REPLY_WAIT_S
    while time.monotonic() < deadline:
        end = trace.cue_end(during.to)
        started = _audio_frames(frames, end) if end is not None else []
        if started:
            await asyncio.sleep(max(0.0, started[0] + during.after - time.monotonic()))
            return True
        await asyncio.sleep(0.02)  # the fake's recording has no event per frame
    return False


async def _until_quiet(trace: Trace, frames: list[BotFrame], fake: FakeMistral, first: int) -> None:
    while True:
        now = time.monotonic()
        requests = fake.requests[first:]
        # A stream the client dropped while the fake was not writing may never be marked abandoned.
        busy = any(r.endpoint in ("chat", "speech") and r.status is None and not r.abandoned
                   and now - r.received_at < STALE_S for r in requests)
        recent = [trace.started, *(p.last for parts in trace.sent.values() for p in parts),
                  *(r.received_at for r in requests)]
        last_audio = next((f.received_at for f in reversed(frames) if f.opus != OPUS_SILENCE), None)
        if last_audio is not None:
            recent.append(last_audio)
        if not busy and now - max(recent) >= QUIET_S:
            return
        await asyncio.sleep(0.1)

