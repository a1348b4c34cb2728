"""What history keeps of an interrupted reply: the words in the share of the audio that played."""

from __future__ import annotations

from bot.conversation.speaking import SpeechLedger, SpokenSentence


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
