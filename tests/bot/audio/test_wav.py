import io
import wave

import numpy as np

from bot.audio.wav import pcm16_to_wav


def test_the_wav_reads_back_as_the_same_samples_and_format() -> None:
    samples = (np.sin(np.arange(4800) / 7.0) * 12_000).astype("<i2")
    stereo = np.repeat(samples, 2)
    for channels, pcm in ((1, samples.tobytes()), (2, stereo.tobytes())):
        data = pcm16_to_wav(pcm, sample_rate=24_000, channels=channels)
        with wave.open(io.BytesIO(data)) as reader:
            assert (reader.getnchannels(), reader.getsampwidth(), reader.getframerate()) == (channels, 2, 24_000)
            assert reader.getnframes() == len(samples)
            assert reader.readframes(reader.getnframes()) == pcm
