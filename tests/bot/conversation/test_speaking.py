"""The reply speaker feeds the player only audio in the format it plays; history keeps the words in
the share of an interrupted reply's audio that played."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.audio.frames import F32LE, S16LE, SAMPLE_WIDTHS, PcmFrame, SampleFormat
from bot.conversation.speaking import ReplySpeaker, SpeechLedger, SpokenSentence


class Synth:
    def __init__(self, rate: int, sample_format: SampleFormat = S16LE) -> None:
        self.rate = rate
        self.sample_format = sample_format

    async def synthesize(self, text: str, *, ref_audio: bytes | None, voice_id: str | None,
                         language: str | None = None) -> AsyncIterator[PcmFrame]:
        width = SAMPLE_WIDTHS[self.sample_format]
        yield PcmFrame(b"\0" * width * (self.rate // 10), self.rate, 1, self.sample_format)  # 0.1 s


class Player:
    def __init__(self) -> None:
        self.pcm = bytearray()
        self.formats: set[str] = set()

    def feed(self, pcm: bytes, sample_format: SampleFormat = S16LE) -> None:
        self.pcm += pcm
        self.formats.add(sample_format)


async def sentences(*texts: str) -> AsyncIterator[str]:
    for text in texts:
        yield text


async def test_frames_in_the_players_format_are_fed_and_timed() -> None:
    player = Player()
    ledger = await ReplySpeaker(Synth(24_000), player, ref_audio=None, voice_id=None,
                                clock=lambda: 1.0).speak(sentences("One.", "Two."))
    assert len(player.pcm) == 2 * 4800
    assert [s.seconds for s in ledger.sentences] == [pytest.approx(0.1), pytest.approx(0.1)]
    assert ledger.sentences[1].start_seconds == pytest.approx(0.1)
    assert player.formats == {S16LE}


async def test_float32_speech_reaches_the_player_as_float32_and_is_timed_by_its_width() -> None:
    player = Player()
    ledger = await ReplySpeaker(Synth(24_000, F32LE), player, ref_audio=None, voice_id=None,
                                clock=lambda: 1.0).speak(sentences("One.", "Two."))
    assert player.formats == {F32LE}  # as it came: the player converts nothing
    assert len(player.pcm) == 2 * 4 * 2400
    assert [s.seconds for s in ledger.sentences] == [pytest.approx(0.1), pytest.approx(0.1)]


async def test_speech_at_another_rate_is_refused_not_played_at_the_wrong_pitch() -> None:
    player = Player()
    speaker = ReplySpeaker(Synth(22_050), player, ref_audio=None, voice_id=None, clock=lambda: 1.0)
    with pytest.raises(ValueError, match="22050 Hz"):
        await speaker.speak(sentences("One."))
    assert player.pcm == b""


def ledger() -> SpeechLedger:
    return SpeechLedger([
        SpokenSentence("Lyon was founded by the Romans.", start_seconds=0.0, seconds=2.0),
        SpokenSentence("It became the capital of the Gauls, long ago.", start_seconds=2.0, seconds=4.0),
    ])


def test_whole_sentences_and_the_played_share_of_the_cut_one() -> None:
    assert ledger().heard_text(3.5) == "Lyon was founded by the Romans. It became the…"  # 1.5 s of 4: 3 of 9 words
    assert ledger().heard_text(5.5) == "Lyon was founded by the Romans. It became the capital of the Gauls, long…"
    assert ledger().heard_text(6.0) == "Lyon was founded by the Romans. It became the capital of the Gauls, long ago."


def test_a_reply_cut_at_its_first_word_keeps_one_word_and_nothing_before_it_started() -> None:
    assert ledger().heard_text(0.01) == "Lyon…"
    assert ledger().heard_text(0.0) == ""
