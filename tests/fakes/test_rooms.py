"""The room harness itself: the transcript oracle hears what was sent, and only that."""

from __future__ import annotations

import numpy as np
import soxr

from tests.fakes.rooms.oracle import RATE, Segment, TranscriptOracle, reference_16k
from tests.fakes.rooms.runner import answer_for, user_text
from tests.fakes.rooms.scenarios import BOB, ROOMS, Music, Words, room
from tests.fakes.rooms.sounds import clip_path, music, speech
from tests.fakes.voice.audio import decode_opus, encode_opus

QUESTION = Words("What is the capital of")
TAIL = Words("France?")
OTHER = Words("Please tell me quickly.")


def received(*pieces: list[bytes] | float) -> bytes:
    """What the bot's receive path makes of Opus packets sent one after the other (one decoder,
    one resampler for the speaker), with streamed zeros for the float pauses."""
    out = []
    for piece in pieces:
        if isinstance(piece, float):
            out.append(np.zeros(int(piece * RATE)))
            continue
        pcm = decode_opus(piece).astype(np.int32)
        out.append(soxr.resample(((pcm[:, 0] + pcm[:, 1]) >> 1).astype(np.float64), 48_000, RATE))
    return np.concatenate(out).round().astype(np.int16).tobytes()


def oracle_with(*parts: tuple[str, Words | Music]) -> tuple[TranscriptOracle, list[list[bytes]]]:
    oracle = TranscriptOracle()
    encoded = []
    for kind, part in parts:
        opus = encode_opus(speech(BOB, part) if isinstance(part, Words) else music(part))
        text = part.text if isinstance(part, Words) else part.heard_as
        oracle.add(Segment("cue", kind, text, getattr(part, "language", "en"), reference_16k(opus)))
        encoded.append(opus)
    return oracle, encoded


def test_every_scripted_words_has_its_recorded_clip() -> None:
    for r in ROOMS:
        for cue in r.cues:
            for part in cue.parts:
                if isinstance(part, Words):
                    assert clip_path(r.person(cue.who), part).exists(), (r.name, part.text)


def test_oracle_hears_both_parts_of_a_paused_question_in_order_and_silence_as_nothing() -> None:
    oracle, (first, second, _other) = oracle_with(("question", QUESTION), ("question", TAIL), ("question", OTHER))
    heard = oracle.hear(received(first, 0.8, second))
    assert heard.text == "What is the capital of France?"
    assert heard.language == "en"
    assert heard.silent_seconds >= 0.7
    assert heard.seconds["question"] > 1.0
    assert 2.2 < heard.speech_span < 2.6  # 1.17 s + the 0.8 s pause + 0.51 s: the pause is inside the turn


def test_oracle_hears_only_the_first_words_of_a_cut_utterance() -> None:
    oracle, (first, _tail, _other) = oracle_with(("question", QUESTION), ("question", TAIL), ("question", OTHER))
    half = first[: len(first) // 2]
    words = oracle.transcribe(received(half)).split()
    assert words and len(words) < len(QUESTION.text.split())
    assert QUESTION.text.startswith(" ".join(words))


def test_oracle_hears_music_as_its_hallucination_and_unknown_audio_as_nothing() -> None:
    tune = Music(3.0)
    oracle, (song,) = oracle_with(("music", tune))
    heard = oracle.hear(received(song))
    assert heard.text == tune.heard_as
    assert heard.seconds["music"] > 2.5
    stranger = encode_opus(speech(BOB, OTHER))  # sent by nobody the oracle knows
    unknown = oracle.hear(received(stranger))
    assert unknown.text == "" and unknown.unknown_seconds > 1.0


def test_chat_requests_are_traced_back_to_what_was_said() -> None:
    two = room("two_sentences")
    body = {"messages": [{"role": "system", "content": "x"},
                         {"role": "user", "content": "(overheard) alice: hi\nbob: What is the capital of France? "
                                                     "Please tell me quickly."}]}
    said = user_text(body)
    assert said == "What is the capital of France? Please tell me quickly."
    assert answer_for(two, said) == two.cue("q").answer
    assert answer_for(two, "What is the capital of") == "You said what is the capital of."
