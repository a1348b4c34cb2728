"""What a speech model would make of the audio a realtime session received, for scripted rooms.

The fake Mistral only sees bytes. The oracle knows every piece of audio the room's members send
(``Segment``: the exact Opus frames, decoded and resampled as the bot's receive path does) and the
words in it, spread evenly over its duration. It cuts the received 16 kHz audio into 100 ms
blocks, finds where each block comes from (normalised cross-correlation against all references;
a block that continues the previous one is checked at the next offset first), and returns the
words whose middle fell in a heard block, in the order heard. So a session that got only the first
half of a sentence transcribes only its first words, exactly the fragment a cut-off produces;
streamed silence transcribes as nothing; music transcribes as whatever ``Music.heard_as`` says.

It also reports how many seconds of each segment a session carried (STT billed on non-speech).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import soxr

from tests.fakes.voice.audio import decode_opus

RATE = 16_000
BLOCK = 1_600  # 100 ms
MATCH = 0.6  # normalised correlation that continues the previous block (Opus keeps ~0.95)
# A block found anew must match better: another clip of the same synthetic voice can reach ~0.6.
FIND = 0.8
QUIET_RMS = 60.0  # int16 units: streamed zeros and Opus silence are below this


@dataclass(slots=True)
class Segment:
    cue: str
    kind: str  # the cue's kind: question, aside, backchannel, music, noise
    text: str  # words said (or Music.heard_as)
    language: str
    reference: np.ndarray  # float64 16 kHz mono
    start: int = 0  # offset in the oracle's bank

    @property
    def words(self) -> list[str]:
        return self.text.split()

    @property
    def speech(self) -> bool:
        return self.kind not in ("music", "noise")

    def word_centres(self) -> list[int]:
        """Sample offset (in the reference) of each word's middle, words spread evenly."""
        count = len(self.words)
        return [int((index + 0.5) * len(self.reference) / count) for index in range(count)]


def reference_16k(opus_frames: list[bytes]) -> np.ndarray:
    pcm = decode_opus(opus_frames).astype(np.int32)
    mono = ((pcm[:, 0] + pcm[:, 1]) >> 1).astype(np.float64)
    return soxr.resample(mono, 48_000, RATE, quality="HQ")


@dataclass(frozen=True, slots=True)
class Hearing:
    """What one piece of received audio carried."""

    text: str
    language: str | None
    seconds: dict[str, float]  # per segment cue kind: seconds of audio matched to it
    silent_seconds: float  # quiet blocks (streamed zeros, pauses)
    unknown_seconds: float  # loud blocks matching nothing the room sent
    speech_span: float = 0.0  # seconds from the first to the end of the last block of speech


@dataclass(slots=True)
class TranscriptOracle:
    segments: list[Segment] = field(default_factory=list)
    _bank: np.ndarray | None = None
    _bank_fft: np.ndarray | None = None
    _bank_energy: np.ndarray | None = None
    _fft_size: int = 0
    _cache: dict[bytes, tuple[int, int] | None] = field(default_factory=dict)

    def add(self, segment: Segment) -> None:
        self.segments.append(segment)
        self._bank = None

    # -- hearing ---------------------------------------------------------------------------------

    def transcribe(self, pcm: bytes) -> str:
        return self.hear(pcm).text

    def hear(self, pcm: bytes) -> Hearing:
        samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], np.int16).astype(np.float64)
        heard: list[tuple[int, int]] = []  # (segment index, block's offset in the segment) in order
        seconds: dict[str, float] = {}
        silent = unknown = 0.0
        previous: tuple[int, int] | None = None
        spoken: list[int] = []  # offsets of the blocks of speech
        for offset in range(0, len(samples) - BLOCK + 1, BLOCK):
            block = samples[offset:offset + BLOCK]
            if float(np.sqrt(np.mean(block * block))) < QUIET_RMS:
                silent += BLOCK / RATE
                previous = None
                continue
            found = self._locate(block, previous)
            previous = found
            if found is None:
                unknown += BLOCK / RATE
                continue
            heard.append(found)
            kind = self.segments[found[0]].kind
            if self.segments[found[0]].speech:
                spoken.append(offset)
            seconds[kind] = seconds.get(kind, 0.0) + BLOCK / RATE
        words: list[str] = []
        taken: set[tuple[int, int]] = set()
        language = None
        for index, position in heard:
            segment = self.segments[index]
            for number, centre in enumerate(segment.word_centres()):
                if position - BLOCK // 2 <= centre < position + BLOCK + BLOCK // 2 and (index, number) not in taken:
                    taken.add((index, number))
                    words.append(segment.words[number])
                    language = language or (segment.language if segment.speech else None)
        span = (spoken[-1] + BLOCK - spoken[0]) / RATE if spoken else 0.0
        return Hearing(" ".join(words), language, seconds, silent, unknown, span)

    def _locate(self, block: np.ndarray, previous: tuple[int, int] | None) -> tuple[int, int] | None:
        key = hashlib.blake2b(block.tobytes(), digest_size=16).digest()
        if key in self._cache:
            return self._cache[key]
        self._build()
        assert self._bank is not None
        found = None
        if previous is not None:
            segment = self.segments[previous[0]]
            position = previous[1] + BLOCK
            start = segment.start + position
            if position < len(segment.reference) and _ncc(self._bank[start:start + BLOCK], block) >= MATCH:
                found = (previous[0], position)
        if found is None:
            found = self._search(block)
        self._cache[key] = found
        return found

    def _search(self, block: np.ndarray) -> tuple[int, int] | None:
        assert self._bank_fft is not None and self._bank_energy is not None and self._bank is not None
        spectrum = np.fft.rfft(block, self._fft_size)
        correlation = np.fft.irfft(self._bank_fft * np.conj(spectrum), self._fft_size)[: len(self._bank_energy)]
        energy = float(np.dot(block, block))
        # Windows much quieter than the block (gaps, fades) cannot be where it came from.
        norm = np.sqrt(np.maximum(self._bank_energy, 0.1 * energy) * energy) + 1e-9
        scores = correlation / norm
        best = int(np.argmax(scores))
        if scores[best] < FIND:
            return None
        for index, segment in enumerate(self.segments):
            # A block straddling the gap before a segment peaks a little before its start.
            if segment.start - BLOCK < best < segment.start + len(segment.reference):
                return index, best - segment.start
        return None

    def _build(self) -> None:
        if self._bank is not None:
            return
        gap = np.zeros(RATE // 2)
        pieces = []
        position = 0
        for segment in self.segments:
            segment.start = position
            pieces += [segment.reference, gap]
            position += len(segment.reference) + len(gap)
        bank = np.concatenate(pieces) if pieces else np.zeros(BLOCK)
        self._fft_size = 1 << (len(bank) + BLOCK).bit_length()
        self._bank_fft = np.fft.rfft(bank, self._fft_size)
        squares = np.concatenate([[0.0], np.cumsum(bank * bank)])
        self._bank_energy = squares[BLOCK:] - squares[:-BLOCK]
        self._bank = bank
        self._cache.clear()


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) != len(b):
        return 0.0
    denom = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    return float(np.dot(a, b)) / denom if denom else 0.0
