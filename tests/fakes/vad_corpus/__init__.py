"""The labelled VAD corpus: speech that must open a turn, music and noise that must not.

Speech is committed as small 16 kHz WAVs (``generate.py`` rebuilds them with espeak-ng, sox and
Debian's alsa-utils recordings); music and noise are synthesised here, seeded, at load time, so
the corpus costs ~1.3 MB in git. Every clip is 16 kHz mono int16 with a per-20-ms-frame label:
for speech, a frame is speech when its level is within 35 dB of the clip's loudest frame (and
above -55 dBFS), which counts unvoiced consonants and short closures as speech, pauses not.

Used by the VAD tests and by ``python -m bench.vad``.
"""

from __future__ import annotations

import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

RATE = 16_000
FRAME = 320  # 20 ms at 16 kHz
HERE = Path(__file__).resolve().parent

Kind = Literal["speech", "speech_over_music", "music", "noise"]


@dataclass(frozen=True)
class Clip:
    name: str
    kind: Kind
    pcm: np.ndarray  # int16, 16 kHz mono, a whole number of 20 ms frames
    labels: np.ndarray  # bool per 20 ms frame: True where someone is talking

    def frames(self) -> Iterator[bytes]:
        for i in range(0, self.pcm.size, FRAME):
            yield self.pcm[i : i + FRAME].tobytes()

    @property
    def seconds(self) -> float:
        return self.pcm.size / RATE


def _whole_frames(x: np.ndarray) -> np.ndarray:
    return x[: x.size - x.size % FRAME]


def to_int16(signal: np.ndarray) -> np.ndarray:
    return np.clip(np.round(signal * 32767), -32768, 32767).astype(np.int16)


def _at_rms(signal: np.ndarray, dbfs: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(signal**2))) or 1.0
    return signal * (10 ** (dbfs / 20) / rms)


def frame_db(pcm: np.ndarray) -> np.ndarray:
    x = _whole_frames(pcm).astype(np.float64).reshape(-1, FRAME) / 32768.0
    return 10 * np.log10(np.mean(x**2, axis=1) + 1e-12)


def speech_labels(pcm: np.ndarray) -> np.ndarray:
    db = frame_db(pcm)
    return db > max(-55.0, float(db.max()) - 35.0)


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (RATE, 1, 2):
            raise ValueError(f"{path.name}: expected 16 kHz mono int16")
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def _speech_float(stem: str) -> np.ndarray:
    """A committed clip as float at -20 dBFS RMS over its active frames (a normal talking level)."""
    pcm = _whole_frames(read_wav(HERE / f"{stem}.wav"))
    x = pcm.astype(np.float64) / 32768.0
    active = np.repeat(speech_labels(pcm), FRAME)
    rms = float(np.sqrt(np.mean(x[active] ** 2)))
    return x * (0.1 / rms)


SPEECH_STEMS = sorted(p.stem for p in HERE.glob("*.wav") if p.stem != "alsa_noise")


# --- music -------------------------------------------------------------------------------------

def _t(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * RATE)) / RATE


def _note(freq: float, seconds: float, *, harmonics: int = 8, decay: float = 1.5, bright: float = 1.0) -> np.ndarray:
    t = _t(seconds)
    wave_ = sum((bright / k) * np.sin(2 * np.pi * freq * k * t) for k in range(1, harmonics + 1) if freq * k < 7800)
    attack = np.minimum(1.0, t / 0.005)
    return wave_ * attack * np.exp(-t * decay)


def _midi(n: int) -> float:
    return 440.0 * 2 ** ((n - 69) / 12)


def chord(seconds: float = 6.0, *, notes: tuple[int, ...] = (60, 64, 67), strike_every: float = 1.5) -> np.ndarray:
    """A piano-like C major triad struck every ``strike_every`` seconds."""
    out = np.zeros(int(seconds * RATE))
    strike = int(strike_every * RATE)
    for start in range(0, out.size, strike):
        piece = sum(_note(_midi(n), strike_every) for n in notes)
        end = min(out.size, start + strike)
        out[start:end] += piece[: end - start]
    return _at_rms(out, -18)


def organ_chord(seconds: float = 6.0) -> np.ndarray:
    """A held A minor 7th on an organ-like timbre (no decay): steady harmonics in the speech band."""
    t = _t(seconds)
    out = sum(
        np.sin(2 * np.pi * _midi(n) * k * t) / k for n in (57, 60, 64, 67) for k in range(1, 6) if _midi(n) * k < 7800
    )
    return _at_rms(out, -18)


def melody(seconds: float = 6.0, *, seed: int = 4, vibrato: bool = False) -> np.ndarray:
    """A melody in C major, notes 0.15–0.5 s: a bright saw-like lead, or a flute-like sine with
    5.5 Hz vibrato (``vibrato``), the hardest case: pitched, gliding, speech-band."""
    rng = np.random.default_rng(seed)
    scale = [60, 62, 64, 65, 67, 69, 71, 72, 74, 76]
    pieces = []
    total = 0
    while total < seconds * RATE:
        dur = float(rng.choice([0.15, 0.25, 0.25, 0.5]))
        freq = _midi(int(rng.choice(scale)) + (12 if vibrato else 0))
        t = _t(dur)
        if vibrato:
            phase = 2 * np.pi * np.cumsum(freq * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))) / RATE
            tone = np.sin(phase) + 0.2 * np.sin(2 * phase)
        else:
            tone = _note(freq, dur, harmonics=12, decay=2.0)
        envelope = np.minimum(1.0, np.minimum(t / 0.01, (dur - t) / 0.02))
        pieces.append(tone * envelope)
        total += t.size
    return _at_rms(np.concatenate(pieces)[: int(seconds * RATE)], -18)


def drums(seconds: float = 6.0, *, bpm: float = 120.0, seed: int = 5) -> np.ndarray:
    """Kick on 1 and 3, snare on 2 and 4, closed hi-hat on every eighth."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * RATE))
    eighth = int(RATE * 30 / bpm)

    def kick() -> np.ndarray:
        t = _t(0.25)
        return np.sin(2 * np.pi * np.cumsum(50 + 100 * np.exp(-t * 30)) / RATE) * np.exp(-t * 12)

    def snare() -> np.ndarray:
        t = _t(0.2)
        return (0.7 * rng.standard_normal(t.size) + 0.5 * np.sin(2 * np.pi * 190 * t)) * np.exp(-t * 20)

    def hat() -> np.ndarray:
        t = _t(0.05)
        return 0.3 * np.diff(rng.standard_normal(t.size + 1)) * np.exp(-t * 80)

    for i, start in enumerate(range(0, out.size, eighth)):
        hits = [hat()]
        if i % 4 == 0:
            hits.append(kick())
        if i % 4 == 2:
            hits.append(snare())
        for hit in hits:
            end = min(out.size, start + hit.size)
            out[start:end] += hit[: end - start]
    return _at_rms(out, -24)  # drums peak ~18 dB over their RMS: -24 keeps them unclipped


def band(seconds: float = 6.0) -> np.ndarray:
    """Chords, lead melody and drums together, like a music bot's stream."""
    return _at_rms(chord(seconds) + melody(seconds) + 0.7 * drums(seconds), -18)


# --- noise -------------------------------------------------------------------------------------

def white(seconds: float = 6.0, *, dbfs: float = -30, seed: int = 2) -> np.ndarray:
    return _at_rms(np.random.default_rng(seed).standard_normal(int(seconds * RATE)), dbfs)


def _coloured(seconds: float, exponent: float, dbfs: float, seed: int) -> np.ndarray:
    n = int(seconds * RATE)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[1:] /= freqs[1:] ** exponent
    spectrum[0] = 0
    return _at_rms(np.fft.irfft(spectrum, n), dbfs)


def pink(seconds: float = 6.0, *, dbfs: float = -30, seed: int = 3) -> np.ndarray:
    return _coloured(seconds, 0.5, dbfs, seed)


def brown(seconds: float = 6.0, *, dbfs: float = -30, seed: int = 6) -> np.ndarray:
    return _coloured(seconds, 1.0, dbfs, seed)


def hum(seconds: float = 6.0, *, mains: float = 50.0, dbfs: float = -30) -> np.ndarray:
    t = _t(seconds)
    return _at_rms(sum(np.sin(2 * np.pi * mains * k * t) / k for k in (1, 2, 3, 5, 7)), dbfs)


def keyboard(seconds: float = 6.0, *, seed: int = 7, dbfs: float = -32) -> np.ndarray:
    """Typing: a key press (sharp 4 ms click with a short resonance) 80–300 ms apart, and its
    softer release 60–110 ms later, over a quiet room."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * RATE))
    pos = int(rng.uniform(0.05, 0.2) * RATE)
    while pos < out.size:
        for offset, gain in ((0, 1.0), (int(rng.uniform(0.06, 0.11) * RATE), 0.4)):
            t = _t(0.03)
            resonance = np.sin(2 * np.pi * rng.uniform(1500, 4000) * t)
            click = gain * (np.diff(rng.standard_normal(t.size + 1)) + 0.5 * resonance) * np.exp(-t * 250)
            end = min(out.size, pos + offset + click.size)
            if pos + offset < out.size:
                out[pos + offset : end] += click[: end - pos - offset]
        pos += int(rng.uniform(0.08, 0.3) * RATE)
    return _at_rms(out, dbfs) + white(seconds, dbfs=-60, seed=seed + 1)


def _alsa_noise() -> np.ndarray:
    return _whole_frames(read_wav(HERE / "alsa_noise.wav")).astype(np.float64) / 32768.0


# --- the corpus ---------------------------------------------------------------------------------

def _clip(name: str, kind: Kind, signal: np.ndarray, labels: np.ndarray | None = None) -> Clip:
    pcm = _whole_frames(to_int16(signal))
    if labels is None:
        labels = np.zeros(pcm.size // FRAME, dtype=bool)
    return Clip(name, kind, pcm, labels[: pcm.size // FRAME])


def _speech_with_pauses() -> tuple[np.ndarray, np.ndarray]:
    """Two requests with a 1.2 s thinking pause inside each, over a -60 dBFS room."""
    gap = np.zeros(int(1.2 * RATE))
    parts = [_speech_float("espeak_en_us_m"), gap, _speech_float("alsa_front_left"), gap, _speech_float("espeak_fr")]
    speech = np.concatenate(parts)
    signal = speech + white(speech.size / RATE, dbfs=-60, seed=11)
    return signal, speech_labels(to_int16(speech))


MUSIC: dict[str, Callable[[], np.ndarray]] = {
    "chord_piano_C": chord,
    "chord_organ_Am7": organ_chord,
    "melody_lead": melody,
    "melody_flute_vibrato": lambda: melody(vibrato=True, seed=8),
    "drums_120bpm": drums,
    "band_mix": band,
}

NOISE: dict[str, Callable[[], np.ndarray]] = {
    "white_-30dBFS": white,
    "white_-15dBFS": lambda: white(dbfs=-15, seed=12),
    "pink_-30dBFS": pink,
    "brown_-25dBFS": lambda: brown(dbfs=-25),
    "hum_50Hz": hum,
    "hum_60Hz+pink": lambda: hum(mains=60.0) + pink(dbfs=-40, seed=13),
    "keyboard": keyboard,
    "alsa_Noise.wav": _alsa_noise,
}


def speech_clips() -> list[Clip]:
    clips = []
    for stem in SPEECH_STEMS:
        x = _speech_float(stem)
        clips.append(_clip(stem, "speech", x, speech_labels(to_int16(x))))
    signal, labels = _speech_with_pauses()
    clips.append(_clip("speech_with_pauses", "speech", signal, labels))
    return clips


def speech_over_music_clips() -> list[Clip]:
    """Someone talking with music behind them (music 10 dB under the voice): still speech."""
    clips = []
    for stem, music in (("espeak_en_gb_f", band), ("alsa_front_center", chord), ("espeak_de_f", melody)):
        speech = _speech_float(stem)
        bed = music(speech.size / RATE + 0.1)[: speech.size]
        mix = speech + _at_rms(bed, -30)
        clips.append(_clip(f"{stem}+{music.__name__}", "speech_over_music", mix, speech_labels(to_int16(speech))))
    return clips


def music_clips() -> list[Clip]:
    return [_clip(name, "music", make()) for name, make in MUSIC.items()]


def noise_clips() -> list[Clip]:
    return [_clip(name, "noise", make()) for name, make in NOISE.items()]


def corpus() -> list[Clip]:
    return speech_clips() + speech_over_music_clips() + music_clips() + noise_clips()
