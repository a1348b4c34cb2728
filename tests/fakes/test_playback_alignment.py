"""The playback alignment finds the holes it is meant to find, and none in clean playback."""

from __future__ import annotations

import numpy as np
import pytest

from tests.fakes.mistral.audio import TTS_SAMPLE_RATE, speech_samples
from tests.fakes.voice.alignment import align, played_audio
from tests.fakes.voice.audio import encode_opus
from tests.fakes.voice.recording import BotFrame
from tests.fakes.voice.rtp import OPUS_SILENCE

SENTENCES = ["Paris is the capital of France.", "It sits on the river Seine.", "Short one."]


def tts_audio() -> list[np.ndarray]:
    return [speech_samples(text).astype(np.float64) for text in SENTENCES]


def bot_frames(sentences: list[np.ndarray], *, silence_after: dict[int, int] | None = None,
               late_after: dict[int, float] | None = None, jitter: dict[int, float] | None = None,
               drop: range = range(0)) -> list[BotFrame]:
    """What a bot playing ``sentences`` back to back would send: 20 ms Opus frames every 20 ms;
    ``silence_after[i]`` Opus-silence frames after audio frame i, ``late_after[i]`` seconds of
    nothing after it, ``jitter[i]`` seconds late for frame i alone (the sender catches up), and
    the audio frames in ``drop`` never sent."""
    pcm = np.concatenate(sentences)
    upsampled = np.repeat(pcm, 2)  # 24 -> 48 kHz; good enough for a level test
    stereo = np.repeat((upsampled * 32767).astype(np.int16)[:, None], 2, axis=1)
    packets = encode_opus(stereo)
    frames, at, sequence = [], 100.0, 0

    def send(opus: bytes, late: float = 0.0) -> None:
        nonlocal at, sequence
        frames.append(BotFrame(sequence, sequence * 960, opus, False, at + late))
        sequence += 1
        at += 0.020

    for index, packet in enumerate(packets):
        if index not in drop:
            send(packet, (jitter or {}).get(index, 0.0))
        for _ in range((silence_after or {}).get(index, 0)):
            send(OPUS_SILENCE)
        at += (late_after or {}).get(index, 0.0)
    return frames


def boundary_frame(sentences: list[np.ndarray], index: int) -> int:
    """The audio frame in which sentence ``index`` begins."""
    return int(sum(len(s) for s in sentences[:index]) / TTS_SAMPLE_RATE / 0.020)


def report_for(frames: list[BotFrame], sentences: list[np.ndarray]):
    return align(played_audio(frames), sentences, tts_rate=TTS_SAMPLE_RATE)


def test_clean_playback_has_no_inserted_silence() -> None:
    sentences = tts_audio()
    report = report_for(bot_frames(sentences), sentences)
    assert report.inserted_ms == 0, report.summary()
    assert report.missing_voiced_ms <= 5, report.summary()
    assert len(report.sentences) == 3


def test_opus_silence_inside_a_sentence_is_counted_in_that_sentence() -> None:
    sentences = tts_audio()
    report = report_for(bot_frames(sentences, silence_after={3: 5}), sentences)
    assert report.sentences[0].inserted_ms == pytest.approx(100, abs=10), report.summary()
    assert report.sentences[1].inserted_ms == 0 and report.extra_gap_ms <= 5, report.summary()


def test_a_stretch_of_nothing_counts_but_ordinary_send_jitter_does_not() -> None:
    sentences = tts_audio()
    inside = boundary_frame(sentences, 1) + 20
    report = report_for(bot_frames(sentences, late_after={inside: 0.120}, jitter={5: 0.040, 6: 0.020}), sentences)
    assert report.sentences[1].inserted_ms == pytest.approx(120, abs=10), report.summary()
    assert report.sentences[0].inserted_ms == 0, report.summary()  # 40 ms late: within a jitter buffer


def test_a_gap_between_sentences_is_an_extra_gap_not_a_hole() -> None:
    sentences = tts_audio()
    report = report_for(bot_frames(sentences, silence_after={boundary_frame(sentences, 2) - 1: 4}), sentences)
    assert report.inserted_inside_ms == 0, report.summary()
    assert report.extra_gap_ms == pytest.approx(80, abs=15), report.summary()


def test_audio_never_sent_is_missing() -> None:
    sentences = tts_audio()
    report = report_for(bot_frames(sentences, drop=range(30, 33)), sentences)
    assert report.missing_voiced_ms == pytest.approx(60, abs=10), report.summary()
    assert report.inserted_ms == 0, report.summary()
