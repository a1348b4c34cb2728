"""Line up what the bot played with the speech the TTS made, sentence by sentence.

The played timeline is rebuilt from the fake voice server's recording: every frame the bot sent
(Opus silence included) is 20 ms of audio, and a stretch where the bot sent nothing for longer
than a listener's jitter buffer hides counts as 20 ms slots of silence. Both timelines are cut
into 5 ms windows and marked voiced or silent by level. Playback may only ever *insert* silence
into the TTS audio (it never invents speech), so walking the voiced windows in order tells which
played window belongs to which sentence; silence inside a sentence's played span that its TTS
audio does not have is inserted silence (a hole), and so is a gap between two sentences beyond
the TTS's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tests.fakes.voice.audio import decode_opus
from tests.fakes.voice.recording import BotFrame
from tests.fakes.voice.rtp import OPUS_SILENCE

PLAYED_RATE = 48_000
FRAME_SECONDS = 0.020
WINDOW_SECONDS = 0.005
# A window is voiced above this RMS (full scale 1.0): -40 dBFS, far above Opus-coded silence and
# far below speech.
VOICED_RMS = 0.01
# Discord clients hold ~40-60 ms of jitter buffer; a later frame than this is heard as a gap.
LATE_TOLERANCE = 0.060


@dataclass(slots=True)
class SentenceReport:
    voiced_ms: float  # the TTS's voiced audio of this sentence
    played_voiced_ms: float
    inserted_ms: float  # silence inside the sentence that the TTS audio did not have
    gap_before_ms: float = 0.0  # silence played between the previous sentence and this one ...
    own_gap_before_ms: float = 0.0  # ... and the TTS's own silence there


@dataclass(slots=True)
class AlignmentReport:
    sentences: list[SentenceReport] = field(default_factory=list)
    missing_voiced_ms: float = 0.0  # TTS voice never played (lost samples)

    @property
    def inserted_inside_ms(self) -> float:
        return sum(s.inserted_ms for s in self.sentences)

    @property
    def extra_gap_ms(self) -> float:
        """Silence between sentences beyond the speech's own."""
        return sum(max(0.0, s.gap_before_ms - s.own_gap_before_ms) for s in self.sentences)

    @property
    def inserted_ms(self) -> float:
        return self.inserted_inside_ms + self.extra_gap_ms

    def summary(self) -> str:
        parts = [f"s{i}: {s.inserted_ms:.0f} ms in {s.voiced_ms:.0f} ms"
                 + (f", gap {s.gap_before_ms:.0f}/{s.own_gap_before_ms:.0f} ms" if i else "")
                 for i, s in enumerate(self.sentences)]
        return f"inserted {self.inserted_ms:.0f} ms ({'; '.join(parts)}); missing {self.missing_voiced_ms:.0f} ms"


def played_audio(frames: Sequence[BotFrame], *, late_tolerance: float = LATE_TOLERANCE) -> np.ndarray:
    """Mono float audio at 48 kHz as a listener gets it: the bot's audio frames decoded in order
    by one decoder (as the encoder meant them), 20 ms of silence for each Opus silence frame and
    for each 20 ms slot the bot left empty past the tolerance."""
    if not frames:
        return np.zeros(0)
    per_frame = int(PLAYED_RATE * FRAME_SECONDS)
    audio_frames = [frame.opus for frame in frames if frame.opus != OPUS_SILENCE]
    decoded = decode_opus(audio_frames)[:, 0].astype(np.float64) / 32768.0
    if len(decoded) < per_frame * len(audio_frames):
        decoded = np.concatenate([decoded, np.zeros(per_frame * len(audio_frames) - len(decoded))])
    pieces: list[np.ndarray] = []
    slot_start = frames[0].received_at
    slots = 0
    audio_index = 0
    for frame in frames:
        due = slot_start + slots * FRAME_SECONDS
        late = frame.received_at - due
        if late > late_tolerance:
            missing = round(late / FRAME_SECONDS)
            pieces.append(np.zeros(missing * per_frame))
            slots += missing
        if frame.opus == OPUS_SILENCE:
            pieces.append(np.zeros(per_frame))
        else:
            pieces.append(decoded[audio_index * per_frame : (audio_index + 1) * per_frame])
            audio_index += 1
        slots += 1
    return np.concatenate(pieces)


def voiced_windows(audio: np.ndarray, rate: int) -> np.ndarray:
    size = int(rate * WINDOW_SECONDS)
    count = len(audio) // size
    if count == 0:
        return np.zeros(0, bool)
    windows = np.asarray(audio[: count * size], np.float64).reshape(count, size)
    return np.sqrt(np.mean(windows**2, axis=1)) > VOICED_RMS


def _silent_runs(voiced: np.ndarray) -> list[tuple[int, int, int]]:
    """(first window, end window, voiced windows before it) of each run of silent windows."""
    runs = []
    count = 0
    index = 0
    while index < len(voiced):
        if voiced[index]:
            count += 1
            index += 1
            continue
        end = index
        while end < len(voiced) and not voiced[end]:
            end += 1
        runs.append((index, end, count))
        index = end
    return runs


def align(played: np.ndarray, sentences: Sequence[np.ndarray], *, tts_rate: int,
          slack_windows: int = 3) -> AlignmentReport:
    """``played``: mono float at 48 kHz; ``sentences``: each sentence's TTS audio, mono float.

    Sentence k starts after the voice of the sentences before it: the boundary is the silent run
    in the played audio found after that many voiced windows (within ``slack_windows``, since the
    codec smears a sentence's edges by a window or so), or no run at all when playback went
    straight on."""
    window_ms = WINDOW_SECONDS * 1000
    heard = voiced_windows(played, PLAYED_RATE)
    heard_voiced = np.flatnonzero(heard)
    report = AlignmentReport()
    owns = [voiced_windows(audio, tts_rate) for audio in sentences]
    counts = [int(own.sum()) for own in owns]
    if len(heard_voiced) == 0:
        report.sentences = [SentenceReport(c * window_ms, 0.0, 0.0) for c in counts]
        report.missing_voiced_ms = sum(counts) * window_ms
        return report
    runs = [run for run in _silent_runs(heard) if 0 < run[2] < len(heard_voiced)]  # inner runs only
    # Each boundary as the played window range [gap_start, gap_end) between two sentences.
    boundaries: list[tuple[int, int]] = []
    target = 0
    for count in counts[:-1]:
        target += count
        near = [run for run in runs if abs(run[2] - target) <= slack_windows]
        if near:
            run = max(near, key=lambda r: (r[1] - r[0], -abs(r[2] - target)))
            boundaries.append((run[0], run[1]))
        else:
            at = int(heard_voiced[min(target, len(heard_voiced) - 1)])
            boundaries.append((at, at))
    edges = [(int(heard_voiced[0]), int(heard_voiced[0])), *boundaries, (int(heard_voiced[-1]) + 1,) * 2]
    for index, own in enumerate(owns):
        own_voiced = np.flatnonzero(own)
        span_start, span_end = edges[index][1], edges[index + 1][0]
        span = heard[span_start:span_end] if span_end > span_start else heard[0:0]
        voiced_here = np.flatnonzero(span)
        silent_inside = (int(voiced_here[-1] - voiced_here[0] + 1 - len(voiced_here))
                         if len(voiced_here) else 0)
        own_silent_inside = (int(own_voiced[-1] - own_voiced[0] + 1 - len(own_voiced))
                             if len(own_voiced) else 0)
        sentence = SentenceReport(
            voiced_ms=len(own_voiced) * window_ms,
            played_voiced_ms=len(voiced_here) * window_ms,
            inserted_ms=max(0, silent_inside - own_silent_inside) * window_ms,
        )
        if index:
            gap_start, gap_end = edges[index]
            sentence.gap_before_ms = (gap_end - gap_start) * window_ms
            previous = np.flatnonzero(owns[index - 1])
            trailing = len(owns[index - 1]) - 1 - int(previous[-1]) if len(previous) else 0
            leading = int(own_voiced[0]) if len(own_voiced) else 0
            sentence.own_gap_before_ms = (trailing + leading) * window_ms
        report.sentences.append(sentence)
    report.missing_voiced_ms = max(0, sum(counts) - len(heard_voiced)) * window_ms
    return report
