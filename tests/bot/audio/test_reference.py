import io

import av
import numpy as np

from bot.audio.clip import normalise_clip
from bot.audio.reference import REFERENCE_MAX_S, best_speech_span, compact_reference
from bot.audio.wav import pcm16_to_wav
from tests.fakes.synth import speech_like

RATE = 24_000


def _decoded(mp3: bytes) -> tuple[str, int, int, np.ndarray]:
    with av.open(io.BytesIO(mp3)) as container:
        stream = container.streams.audio[0]
        frames = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
        return container.format.name, stream.rate, stream.channels, np.concatenate(frames)


def test_a_30_s_clip_becomes_an_mp3_of_its_best_15_s_under_80_kb() -> None:
    signal = (speech_like(30.0, RATE) * 20_000).astype("<i2")
    clip = normalise_clip(pcm16_to_wav(signal.tobytes(), sample_rate=RATE))
    reference = compact_reference(clip.wav)
    fmt, rate, channels, samples = _decoded(reference)
    assert (fmt, rate, channels) == ("mp3", RATE, 1)
    assert abs(samples.size / RATE - REFERENCE_MAX_S) < 0.1
    # 15 s at 40 kbit/s is ~75 KB: ~100 KB once base64'd into the request, 40 ms at 20 Mbit/s.
    assert len(reference) < 80_000 < len(clip.wav) // 15


def test_the_window_with_the_most_speech_is_chosen() -> None:
    # 12 s of silence, then 20 s of speech, then 3 s of silence: the 20 s window is the speech.
    speech = speech_like(20.0, RATE)
    signal = np.concatenate([np.zeros(12 * RATE), speech, np.zeros(3 * RATE)])
    start, end = best_speech_span(signal, RATE, max_seconds=20.0)
    assert abs(start / RATE - 12.0) < 0.5 and end - start == 20 * RATE


def test_a_short_clip_is_used_whole() -> None:
    signal = speech_like(8.0, RATE)
    assert best_speech_span(signal, RATE) == (0, signal.size)
    wav = pcm16_to_wav((signal * 20_000).astype("<i2").tobytes(), sample_rate=RATE)
    _fmt, _rate, _channels, samples = _decoded(compact_reference(wav))
    assert abs(samples.size / RATE - 8.0) < 0.1
