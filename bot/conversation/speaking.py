"""Speaking one reply: sentences in order → Voxtral TTS (the next one prefetched) → the player.

Sentence n+1 is synthesised while sentence n is still streaming or playing, so the channel hears
no gap between sentences beyond the speech's own; the audio still reaches the player strictly
in order. Each sentence's start offset in the reply's audio is kept, so after a barge-in the
history can record only what was actually heard.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol

from bot.audio.frames import S16LE, TTS_CHANNELS, TTS_SAMPLE_RATE, PcmFrame, SampleFormat
from bot.audio.ogg_opus import OpusPages

SpeechChunk = PcmFrame | OpusPages


class Synthesizer(Protocol):
    def synthesize(
        self, text: str, *, ref_audio: bytes | None, voice_id: str | None, language: str | None = None
    ) -> AsyncIterator[SpeechChunk]: ...


class Player(Protocol):
    def feed(self, pcm: bytes, sample_format: SampleFormat = S16LE) -> None: ...

    def feed_pages(self, pages: OpusPages) -> None: ...


@dataclass(slots=True)
class SpokenSentence:
    text: str
    start_seconds: float  # offset of its first sample within the reply's audio
    seconds: float = 0.0
    characters: int = 0


@dataclass(slots=True)
class SpeechLedger:
    """What was sent to the player, sentence by sentence."""

    sentences: list[SpokenSentence] = field(default_factory=list)
    first_audio_at: float | None = None

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.sentences)

    @property
    def characters(self) -> int:
        return sum(len(s.text) for s in self.sentences)

    def text(self) -> str:
        return " ".join(s.text for s in self.sentences)

    def heard_text(self, played_seconds: float) -> str:
        """What was heard: whole sentences, then the words of the cut one in the share of its
        audio that played (speech is roughly even in words), ending with an ellipsis."""
        heard = []
        for sentence in self.sentences:
            if sentence.start_seconds >= played_seconds:
                break
            if sentence.start_seconds + sentence.seconds <= played_seconds + 0.05:
                heard.append(sentence.text)
                continue
            words = sentence.text.split()
            share = (played_seconds - sentence.start_seconds) / sentence.seconds if sentence.seconds > 0 else 0.0
            spoken = max(1, round(len(words) * share))
            heard.append(" ".join(words[:spoken]).rstrip(".,;:!?…") + "…")
        return " ".join(heard)


# A sentence being synthesised: its text, its audio as it arrives (None ends it), its task.
_Slot = tuple[str, "asyncio.Queue[SpeechChunk | None]", "asyncio.Task[None]"]


class ReplySpeaker:
    def __init__(
        self,
        synthesizer: Synthesizer,
        player: Player,
        *,
        ref_audio: bytes | None,
        voice_id: str | None,
        clock: Callable[[], float],
        prefetch: int = 1,
        playback_format: tuple[int, int] = (TTS_SAMPLE_RATE, TTS_CHANNELS),
        language: str | None = None,
    ) -> None:
        self._tts = synthesizer
        self._player = player
        self._ref_audio = ref_audio
        self._voice_id = voice_id
        self._clock = clock
        self._prefetch = prefetch
        # What the player's FFmpeg is told it gets (rate, channels): audio in any other format
        # would play at the wrong pitch or speed, so it is refused instead.
        self._playback_format = playback_format
        self._language = language  # the reply's language: the voice speaks it
        self.ledger = SpeechLedger()

    async def speak(self, sentences: AsyncIterator[str]) -> SpeechLedger:
        """Consume ``sentences`` as they are written; return when all their audio was fed."""
        slots: asyncio.Queue[_Slot | None] = asyncio.Queue(maxsize=self._prefetch)  # None: no more sentences
        producer = asyncio.create_task(self._start_syntheses(sentences, slots), name="tts-prefetch")
        task: asyncio.Task[None] | None = None
        try:
            offset = 0.0
            while True:
                slot = await _next_slot(slots, producer)
                if slot is None:
                    break
                text, audio, task = slot
                sentence = SpokenSentence(text=text, start_seconds=offset)
                self.ledger.sentences.append(sentence)
                while (chunk := await audio.get()) is not None:
                    if self.ledger.first_audio_at is None:
                        self.ledger.first_audio_at = self._clock()
                    self._feed(chunk)
                    # Ogg Opus: its packets' frames (as played, one per 20 ms slot when copied).
                    sentence.seconds += chunk.duration
                await task  # re-raises a synthesis failure after its audio so far was fed
                offset += sentence.seconds
            await producer
        finally:
            producer.cancel()
            if task is not None:
                task.cancel()  # the sentence being spoken may still be synthesising (barge-in)
            # wait(), not await: a failed producer must not replace the exception in flight.
            await asyncio.wait({producer})
            while not slots.empty():
                left = slots.get_nowait()
                if left is not None:
                    left[2].cancel()
        return self.ledger

    def _feed(self, chunk: SpeechChunk) -> None:
        if isinstance(chunk, OpusPages):
            self._player.feed_pages(chunk)  # Opus packets carry no rate: any plays at its pitch
            return
        if (chunk.sample_rate, chunk.channels) != self._playback_format:
            raise ValueError(f"speech is {chunk.sample_rate} Hz x{chunk.channels}; the player plays "
                             f"{self._playback_format[0]} Hz x{self._playback_format[1]}")
        self._player.feed(chunk.pcm, chunk.sample_format)

    async def _start_syntheses(self, sentences: AsyncIterator[str], slots: asyncio.Queue[_Slot | None]) -> None:
        # Syntheses handed over in ``slots`` belong to ``speak`` (it cancels them when it stops).
        async for text in sentences:
            audio: asyncio.Queue[SpeechChunk | None] = asyncio.Queue()
            task = asyncio.create_task(self._synthesize(text, audio), name="tts-sentence")
            try:
                await slots.put((text, audio, task))
            except BaseException:
                task.cancel()  # never handed over
                raise
        await slots.put(None)

    async def _synthesize(self, text: str, audio: asyncio.Queue[SpeechChunk | None]) -> None:
        try:
            async for chunk in self._tts.synthesize(text, ref_audio=self._ref_audio, voice_id=self._voice_id,
                                                    language=self._language):
                audio.put_nowait(chunk)
        finally:
            audio.put_nowait(None)


async def _next_slot(slots: asyncio.Queue[_Slot | None], producer: asyncio.Task[None]) -> _Slot | None:
    """The next queued sentence, or the failure of the sentence source (e.g. the chat stream
    broke mid-reply): without this, a producer that died before queuing its end left ``speak``
    waiting forever and the guild's turn loop stuck."""
    getter = asyncio.ensure_future(slots.get())
    try:
        await asyncio.wait({getter, producer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        got = getter.done()
        if not got:
            getter.cancel()  # Queue.get leaves the item queued when cancelled before it returns
    if got:
        return getter.result()
    producer.result()  # raises the producer's failure
    return await slots.get()  # it ended cleanly, so the None that ends it is queued
