"""The rooms' audio: recorded speech clips (espeak-ng, kept under clips/) and synthesised music.

Speech is real synthetic speech, not a harmonic stand-in, so a model-based VAD (Silero, TEN)
treats it as speech. The clips are generated once with espeak-ng and committed as Ogg/Opus, so a
clean clone needs no espeak-ng; ``python -m tests.fakes.rooms.sounds`` regenerates them.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import av
import numpy as np
import soxr

from tests.fakes.rooms.scenarios import Music, Person, Words, all_words
from tests.fakes.voice.audio import CHANNELS, SAMPLE_RATE

CLIPS = Path(__file__).with_name("clips")


def clip_path(person: Person, words: Words) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", words.text.lower()).strip("-")[:40]
    digest = hashlib.sha1(f"{person.voice}|{words.language}|{words.text}".encode()).hexdigest()[:8]
    return CLIPS / f"{slug}-{digest}.ogg"


def speech(person: Person, words: Words) -> np.ndarray:
    """48 kHz stereo int16 ``(n, 2)`` of ``person`` saying ``words``, silence trimmed."""
    path = clip_path(person, words)
    if not path.exists():
        raise FileNotFoundError(f"{path.name}: run `python -m tests.fakes.rooms.sounds` (needs espeak-ng)")
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        chunks = [f.to_ndarray().reshape(-1) for frame in container.decode(audio=0)
                  for f in resampler.resample(frame)]
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    mono = np.concatenate(chunks).astype(np.int16)
    return np.repeat(mono[:, None], CHANNELS, axis=1)


_NOTES = {"C": 261.63, "D": 293.66, "E": 329.63, "F": 349.23, "G": 392.00, "A": 440.00, "B": 493.88}
_CHORDS = (("C", "E", "G"), ("A", "C", "E"), ("F", "A", "C"), ("G", "B", "D"))


def music(part: Music, *, seed: int = 7, level: float = 0.3) -> np.ndarray:
    """Chords (2 s each), a melody (quarter notes at 120 bpm) and a kick drum on every beat."""
    rate = SAMPLE_RATE
    n = int(part.seconds * rate)
    t = np.arange(n) / rate
    rng = np.random.default_rng(seed)
    signal = np.zeros(n)
    for index, start in enumerate(range(0, n, 2 * rate)):
        end = min(n, start + 2 * rate)
        for note in _CHORDS[index % len(_CHORDS)]:
            for harmonic, gain in ((1, 1.0), (2, 0.4), (3, 0.2)):
                signal[start:end] += 0.25 * gain * np.sin(2 * np.pi * _NOTES[note] / 2 * harmonic * t[start:end])
    beat = rate // 2
    scale = list(_NOTES.values())
    for start in range(0, n, beat):
        end = min(n, start + beat)
        freq = 2 * scale[int(rng.integers(len(scale)))]
        local = t[start:end] - t[start]
        signal[start:end] += 0.35 * np.sin(2 * np.pi * freq * local) * np.exp(-3 * local)
        kick = np.sin(2 * np.pi * (60 + 90 * np.exp(-30 * local)) * local) * np.exp(-12 * local)
        signal[start:end] += 0.8 * kick
    signal *= level / np.max(np.abs(signal))
    mono = np.round(signal * 32767).astype(np.int16)
    return np.repeat(mono[:, None], CHANNELS, axis=1)


# -- generating the clips (needs espeak-ng) --------------------------------------------------


def _espeak(person: Person, words: Words) -> tuple[np.ndarray, int]:
    voice = person.voice if words.language == "en" else words.language
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "clip.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "165", "-w", str(out), words.text], check=True)
        with wave.open(str(out)) as reader:
            rate = reader.getframerate()
            pcm = np.frombuffer(reader.readframes(reader.getnframes()), np.int16)
    loud = np.flatnonzero(np.abs(pcm) > 300)
    return pcm[loud[0]:loud[-1] + 1], rate


def _write_ogg(path: Path, pcm: np.ndarray, rate: int) -> None:
    audio = soxr.resample(pcm.astype(np.float32) / 32768, rate, SAMPLE_RATE)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=SAMPLE_RATE, layout="mono")
        stream.bit_rate = 48_000
        frame = av.AudioFrame.from_ndarray(audio.astype(np.float32).reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono", rate=SAMPLE_RATE)
        for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(resampled):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    path.write_bytes(buffer.getvalue())


def generate(*, force: bool = False) -> list[Path]:
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is needed to regenerate the clips (apt-get install espeak-ng)")
    CLIPS.mkdir(exist_ok=True)
    written = []
    for person, words in all_words():
        path = clip_path(person, words)
        if path.exists() and not force:
            continue
        pcm, rate = _espeak(person, words)
        _write_ogg(path, pcm, rate)
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in generate(force="--force" in sys.argv):
        print(written_path)
