"""Shared pieces of the end-to-end hearing proofs: a bot in a call, a recording consumer, and the
reference audio a correct receive path must reproduce.

The path under test is the production one: simulated members speak through the fake voice server
(Opus → real DAVE → RTP → transport AEAD → UDP), the real bot (``bot.__main__.assemble``) joined
with ``/join``, and its ``VoxcordVoiceClient`` hands 16 kHz frames to ``Hearing``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soxr

from bot.app import VoxcordBot
from bot.audio.utterances import Event, SpeechStarted, UtteranceAudio, UtteranceEnded
from bot.audio.vad import SpectralVad
from bot.conversation.hearing import Hearing
from bot.voice.client import VoxcordVoiceClient
from tests.fakes.discord import FakeDiscord
from tests.fakes.synth import speech_like, stereo, to_int16
from tests.fakes.voice import FakeVoiceServer, SentFrame, SimulatedSpeaker
from tests.fakes.voice.audio import decode_opus
from tests.harness import World, build_world, running_bot, settings_for

GUARD_S = 20.0  # hang guard only: nothing asserts on how long anything took
STT_RATE = 16_000
FRAME_S = 0.020
STT_FRAME_SAMPLES = 320


# ----------------------------------------------------------------------------- audio
def voice(seconds: float, *, seed: int, pitch: float = 1.0) -> np.ndarray:
    """48 kHz stereo int16 ``(n, 2)`` speech stand-in. ``pitch`` > 1 raises every harmonic (and the
    syllable rate) by synthesising at 48 kHz / pitch and playing it at 48 kHz."""
    mono = to_int16(speech_like(seconds * pitch, round(48_000 / pitch), seed=seed))
    return stereo(mono).reshape(-1, 2)


def decoded_16k(frames: Sequence[SentFrame]) -> np.ndarray:
    """``frames`` decoded by one libopus decoder in order (lost ones too, as a lossless network
    would deliver them), downmixed, resampled to 16 kHz mono by soxr in one shot. Float64 in int16
    units, 320 samples per frame."""
    pcm = decode_opus([frame.opus for frame in frames]).astype(np.int32)
    mono = ((pcm[:, 0] + pcm[:, 1]) >> 1).astype(np.float64)
    return soxr.resample(mono, 48_000, STT_RATE, quality="HQ")


def as_float(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype=np.int16).astype(np.float64)


@dataclass(frozen=True, slots=True)
class Match:
    correlation: float  # normalised correlation of the aligned overlap
    lag: int  # samples: heard[i + lag] lines up with reference[i]
    overlap: int


def best_match(reference: np.ndarray, heard: np.ndarray, *, max_lag: int = 8_000) -> Match:
    """Align ``heard`` to ``reference`` by FFT cross-correlation over lags ±``max_lag`` samples
    and return the normalised correlation of the overlapping parts at the best lag."""
    n = len(reference) + len(heard)
    size = 1 << (n - 1).bit_length()
    xc = np.fft.irfft(np.fft.rfft(heard, size) * np.conj(np.fft.rfft(reference, size)), size)
    lags = np.r_[np.arange(0, max_lag + 1), np.arange(-max_lag, 0)]
    lag = int(lags[np.argmax(xc[lags])])
    ref, got = _overlap(reference, heard, lag)
    denom = float(np.sqrt(np.dot(ref, ref) * np.dot(got, got))) or 1.0
    return Match(float(np.dot(ref, got)) / denom, lag, len(ref))


def _overlap(reference: np.ndarray, heard: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    ref = reference[max(0, -lag):]
    got = heard[max(0, lag):]
    n = min(len(ref), len(got))
    return ref[:n], got[:n]


CONTEXT_FRAMES = 4  # reference frames kept before an utterance: room for the resampler's held-back tail


@dataclass(frozen=True, slots=True)
class Comparison:
    """How a heard utterance compares with what its speaker sent (see ``compare``)."""

    match: Match
    carried_over: int  # samples of the speaker's earlier audio at the start of the heard utterance
    mismatched_frames: list[int]  # indices into ``sent`` of 20 ms frames that differ audibly
    heard_seconds: float
    sent_seconds: float


def compare(heard: np.ndarray, history: Sequence[SentFrame], sent: Sequence[SentFrame]) -> Comparison:
    """Compare ``heard`` with ``sent``, the last frames of everything the speaker sent (``history``).

    The reference decodes the whole ``history`` with one continuous decoder and resamples it in
    one go, because that is what the receiver does: its per-speaker decoder and resampler run on
    across utterances. (A fresh decoder would differ on the first frames after the previous
    utterance, and soxr's streaming output holds back up to ~40 ms, which a pause leaves inside
    the filter until the speaker's next packet pushes it out: the start of the next utterance.)
    A frame is "mismatched" when the RMS of the aligned difference over it exceeds 10 % of the
    reference's RMS over the utterance."""
    start = len(history) - len(sent)
    assert list(history[start:]) == list(sent), "sent must be the tail of the speaker's history"
    full = decoded_16k(history)
    base = max(0, start - CONTEXT_FRAMES) * STT_FRAME_SAMPLES
    section = full[base:]
    match = best_match(section, heard)
    carried_over = start * STT_FRAME_SAMPLES - base + match.lag
    # Per-frame difference, on the reference's frame grid of ``sent``.
    offset = start * STT_FRAME_SAMPLES - base  # where sent[0] begins in ``section``
    scale = float(np.sqrt(np.mean(section[offset:] ** 2))) or 1.0
    mismatched = []
    for index in range(len(sent)):
        lo = offset + index * STT_FRAME_SAMPLES
        ref = section[lo : lo + STT_FRAME_SAMPLES]
        got = heard[lo + match.lag : lo + match.lag + STT_FRAME_SAMPLES] if lo + match.lag >= 0 else heard[:0]
        if len(got) < len(ref):
            continue  # past the end of what was heard: the duration check covers it
        if float(np.sqrt(np.mean((got - ref) ** 2))) > 0.1 * scale:
            mismatched.append(index)
    return Comparison(match, carried_over, mismatched, len(heard) / STT_RATE, len(sent) * FRAME_S)


# ----------------------------------------------------------------------------- the consumer
@dataclass(slots=True)
class Utterance:
    user_id: int
    started: SpeechStarted
    pcm: bytearray = field(default_factory=bytearray)
    ended: UtteranceEnded | None = None

    @property
    def audio(self) -> np.ndarray:
        return as_float(bytes(self.pcm))

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / STT_RATE


class Recorder:
    """A ``HearingConsumer`` that keeps every speaker's utterances and checks the event grammar
    (SpeechStarted, UtteranceAudio…, UtteranceEnded per speaker, never interleaved)."""

    def __init__(self) -> None:
        self.utterances: dict[int, list[Utterance]] = defaultdict(list)
        self.open: dict[int, Utterance] = {}
        self.grammar_errors: list[str] = []
        self._changed = asyncio.Event()

    def on_heard(self, user_id: int, event: Event) -> None:
        current = self.open.get(user_id)
        if isinstance(event, SpeechStarted):
            if current is not None:
                self.grammar_errors.append(f"{user_id}: SpeechStarted inside an utterance")
            self.open[user_id] = Utterance(user_id, event)
        elif isinstance(event, UtteranceAudio):
            if current is None:
                self.grammar_errors.append(f"{user_id}: audio outside an utterance")
            else:
                current.pcm += event.pcm
        elif isinstance(event, UtteranceEnded):
            if current is None:
                self.grammar_errors.append(f"{user_id}: end without a start")
            else:
                current.ended = event
                self.utterances[user_id].append(self.open.pop(user_id))
        self._changed.set()

    def finished(self, user_id: int) -> list[Utterance]:
        return list(self.utterances.get(user_id, ()))

    async def wait_for(self, predicate: Callable[[], bool], *, what: str) -> None:
        async def waiting() -> None:
            while not predicate():
                self._changed.clear()
                await self._changed.wait()
        try:
            await asyncio.wait_for(waiting(), GUARD_S)
        except TimeoutError:
            raise AssertionError(f"hang guard: still waiting for {what}; heard {self.summary()}") from None

    async def wait_utterances(self, user_id: int, count: int) -> list[Utterance]:
        await self.wait_for(lambda: len(self.utterances.get(user_id, ())) >= count,
                            what=f"{count} finished utterance(s) from {user_id}")
        return self.finished(user_id)

    def summary(self) -> dict[int, list[float]]:
        return {uid: [round(u.seconds, 3) for u in us] for uid, us in self.utterances.items()}


class TimedHearing(Hearing):
    """``Hearing`` that also notes when each speaker's frames reached the event loop (for the
    reconnect measurement; the frames themselves go on to ``Hearing`` untouched)."""

    def __init__(self, consumer: Recorder, **kwargs: object) -> None:
        super().__init__(consumer, **kwargs)  # type: ignore[arg-type]
        self.arrivals: dict[int, list[float]] = defaultdict(list)

    def on_speaker_frame(self, user_id: int, pcm16k: bytes, rtp_timestamp: int) -> None:
        self.arrivals[user_id].append(time.monotonic())
        super().on_speaker_frame(user_id, pcm16k, rtp_timestamp)


# ----------------------------------------------------------------------------- the call
@dataclass(slots=True)
class Call:
    fake: FakeDiscord
    voice: FakeVoiceServer
    world: World
    bot: VoxcordBot
    recorder: Recorder
    hearing: TimedHearing
    users: list[int]  # member (invoked /join), admin, carol: the ids ``call_with`` speaks as

    @property
    def guild_id(self) -> int:
        return self.world.guild.id

    @property
    def channel_id(self) -> int:
        return self.world.voice.id

    @property
    def voice_client(self) -> VoxcordVoiceClient:
        session = self.bot.sessions.get(self.guild_id)
        assert session is not None, "the bot is not in voice"
        client = session.voice_client
        assert isinstance(client, VoxcordVoiceClient)
        return client

    async def settled(self) -> None:
        """The fake finished every DAVE change and the bot executed the last transition."""
        await asyncio.wait_for(self.voice.wait_dave_settled(self.guild_id), GUARD_S)
        group = self.voice.channel(self.guild_id, self.channel_id).group
        state = self.voice_client._connection
        if group.protocol_version > 0:
            async def bot_ready() -> None:
                # discord.py changes these inside its websocket reader: there is no event to await.
                while not (state.dave_session is not None and state.dave_session.ready  # noqa: ASYNC110
                           and state.dave_protocol_version == group.protocol_version
                           and not state.dave_pending_transitions):
                    await asyncio.sleep(0.01)
            await asyncio.wait_for(bot_ready(), GUARD_S)

    async def announced(self, speaker: SimulatedSpeaker) -> None:
        """``speaker`` sent SPEAKING and the bot's receiver has mapped its SSRC."""
        await speaker.announce(True)
        receiver = self.voice_client.receiver

        async def mapped() -> None:
            # The receiver maps SSRCs in discord.py's websocket hook: there is no event to await.
            while receiver.user_for_ssrc(speaker.ssrc) != speaker.user_id:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
        await asyncio.wait_for(mapped(), GUARD_S)

    async def member_joins_voice(self, user_id: int, *, seed: int):
        """A member enters the bot's channel: the main gateway's voice state, then the voice
        server's CLIENTS_CONNECT and MLS Add (a re-key when the bot is already there)."""
        await self.fake.set_voice_state(self.guild_id, user_id, self.channel_id)
        return self.voice.add_speaker(self.guild_id, self.channel_id, user_id, seed=seed)


@contextlib.asynccontextmanager
async def call_with(
    fake: FakeDiscord, voice_server: FakeVoiceServer, data_dir: Path, *, speakers: int,
    settings: dict[str, object] | None = None, **hearing: object,
) -> AsyncIterator[tuple[Call, list]]:
    """The real bot /join-ed into a channel where ``speakers`` members already are, receiving into
    ``Hearing``; yields the call and the members' ``SimulatedSpeaker``s (ids from the world)."""
    world = build_world(fake)
    extra = fake.snowflakes.next()
    world.guild.add_member(extra, "carol")
    users = [world.member_id, world.admin_id, extra][:speakers]
    members = []
    for index, user_id in enumerate(users):
        await fake.set_voice_state(world.guild.id, user_id, world.voice.id)
        members.append(voice_server.add_speaker(world.guild.id, world.voice.id, user_id, seed=index + 1))
    async with running_bot(fake, settings_for(fake, data_dir, **(settings or {}))) as bot:
        reply = await (await fake.invoke(guild_id=world.guild.id, user_id=world.member_id, command="join",
                                         channel_id=world.text.id)).wait_reply(timeout=GUARD_S)
        assert "Joined" in reply.content, reply.content
        recorder = Recorder()
        # The stand-in voice is calibrated for SpectralVad (see tests/harness.settings_for).
        timed = TimedHearing(recorder, **{"vad_factory": SpectralVad, **hearing})
        call = Call(fake, voice_server, world, bot, recorder, timed, [world.member_id, world.admin_id, extra])
        await asyncio.wait_for(voice_server.wait_connected(world.guild.id), GUARD_S)
        await call.settled()
        timed.start()
        if call.voice_client.is_receiving():
            # The answering loop (bot.conversation), once wired, starts receiving into its own
            # Hearing on /join. Swap its consumer for the recorder: same Hearing class, same path.
            call.voice_client.stop_receiving()
        call.voice_client.start_receiving(timed)
        try:
            yield call, members
        finally:
            call.voice_client.stop_receiving()
            await timed.stop()

