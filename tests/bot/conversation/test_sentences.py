from __future__ import annotations

import random

import pytest

from bot.conversation.sentences import SentenceSplitter, speakable


def split(text: str, chunks: list[int] | None = None, **kwargs: int) -> list[str]:
    """Feed ``text`` in pieces of the given sizes (repeating), collecting every sentence."""
    splitter = SentenceSplitter(**kwargs)
    out: list[str] = []
    sizes = chunks or [len(text) or 1]
    i = n = 0
    while i < len(text):
        size = sizes[n % len(sizes)]
        out += splitter.feed(text[i : i + size])
        i += size
        n += 1
    return out + splitter.flush()


def every_chunking(text: str) -> list[list[str]]:
    rng = random.Random(1234)
    plans: list[list[int] | None] = [None, [1], [2], [3], [7]]
    plans += [[rng.randint(1, 9) for _ in range(20)] for _ in range(10)]
    return [split(text, plan) for plan in plans]


def assert_same_for_all_chunkings(text: str, expected: list[str]) -> None:
    for result in every_chunking(text):
        assert result == expected


def test_splits_on_terminators_whatever_the_delta_boundaries() -> None:
    text = "The weather is sunny today. Do you want to go out? That sounds great! I'll pack a lunch."
    assert_same_for_all_chunkings(
        text,
        [
            "The weather is sunny today.",
            "Do you want to go out?",
            "That sounds great!",
            "I'll pack a lunch.",
        ],
    )


def test_abbreviations_do_not_end_sentences() -> None:
    text = (
        "Dr. Smith and Mr. Jones met at St. Mary's hospital. "
        "Bring fruit, e.g. apples, i.e. something sweet, etc. and water. Then we leave."
    )
    assert_same_for_all_chunkings(
        text,
        [
            "Dr. Smith and Mr. Jones met at St. Mary's hospital.",
            "Bring fruit, e.g. apples, i.e. something sweet, etc. and water.",
            "Then we leave.",
        ],
    )


def test_decimals_do_not_split() -> None:
    text = "Pi is about 3.14159 and e is 2.718 roughly. Version 2.5 is out now."
    assert_same_for_all_chunkings(text, ["Pi is about 3.14159 and e is 2.718 roughly.", "Version 2.5 is out now."])


def feed_tokens(tokens: list[str]) -> list[str]:
    splitter = SentenceSplitter()
    out: list[str] = []
    for token in tokens:
        out += splitter.feed(token)
    return out + splitter.flush()


def test_urls_and_inner_ellipses_do_not_split_as_a_model_tokenises_them() -> None:
    # A period after a plain word is taken as an end without waiting for the next token, so
    # these rely on the tokenizer's habit of emitting ".com" and "..." as single tokens.
    assert feed_tokens(["See", " example", ".com", "/docs", ".html", " for", " more", ".", " Then", " go", "."]) == [
        "See example.com/docs.html for more.", "Then go.",
    ]
    assert feed_tokens(["Well", "...", " let", " me", " think", " about", " it", ".", " Hmm", "…", " That", " is",
                        " odd", "."]) == ["Well... let me think about it.", "Hmm… That is odd."]


def test_inline_numbered_list_stays_one_sentence_but_a_number_can_end_one() -> None:
    text = "Do this: 1. open the lid 2. pour the water. I'm 25. Nice to meet you all."
    assert_same_for_all_chunkings(
        text,
        ["Do this: 1. open the lid 2. pour the water.", "I'm 25. Nice to meet you all."],
    )


def test_initials_and_acronyms_do_not_split() -> None:
    text = "The Hobbit is by J. R. R. Tolkien, published in the U.S. in 1938. It sold well."
    assert_same_for_all_chunkings(
        text, ["The Hobbit is by J. R. R. Tolkien, published in the U.S. in 1938.", "It sold well."]
    )


def test_short_fragments_merge_into_the_next_sentence_but_not_at_the_end() -> None:
    assert split("Yes. I can help you with that right away.") == ["Yes. I can help you with that right away."]
    assert split("Sure! Ok. Let me check the weather for you.") == [
        "Sure! Ok. Let me check the weather for you."
    ]
    assert split("That is everything I know. Bye.") == ["That is everything I know.", "Bye."]
    assert split("Yes.") == ["Yes."]


def test_sentence_is_only_emitted_once_confirmed() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("I met Dr") == []
    assert splitter.feed(". Who in the park") == []  # "Dr." then a capital: still an abbreviation
    assert splitter.feed(" at 3.") == []  # "3." may become "3.5"
    assert splitter.feed(" He waved") == ["I met Dr. Who in the park at 3."]
    # "!" and "?" are confirmed at once: a following "!" could only lengthen the run, and waiting
    # for the next token would delay every exclamation and question by a token.
    assert splitter.feed(" at me!") == ["He waved at me!"]
    assert splitter.feed(" ") == []
    assert splitter.flush() == []


def test_period_after_a_plain_word_is_confirmed_without_waiting_for_the_next_token() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("Paris is the capital of France") == []
    assert splitter.feed(".") == ["Paris is the capital of France."]
    assert splitter.feed(" We should leave by noon. ") == ["We should leave by noon."]
    assert splitter.flush() == []


@pytest.mark.parametrize(
    ("first", "rest", "whole"),
    [
        ("It costs 5 dollars, no", ". 5 is the price.", "It costs 5 dollars, no. 5 is the price."),
        ("The study by Smith et al", ". found it to be true.", "The study by Smith et al. found it to be true."),
        ("The book is by J", ". Tolkien and it is long.", "The book is by J. Tolkien and it is long."),
        ("I asked the Dr", ". Jones about it again.", "I asked the Dr. Jones about it again."),
        ("It happened in the U.S", ". Army long ago.", "It happened in the U.S. Army long ago."),
        ("The answer is 42", ".5 percent exactly.", "The answer is 42.5 percent exactly."),
        ("They work at NASA", ". Gov sites say so.", "They work at NASA. Gov sites say so."),
    ],
)
def test_ambiguous_periods_still_wait_for_the_next_token(first: str, rest: str, whole: str) -> None:
    splitter = SentenceSplitter()
    assert splitter.feed(first + ".") == []
    # What follows decides (the capital-letter rule); either way nothing is lost or reordered.
    assert " ".join(splitter.feed(rest[1:]) + splitter.flush()) == whole


def test_newlines_end_sentences_and_markdown_is_stripped() -> None:
    text = (
        "## Options for tonight\n"
        "- **Pizza** from the place on `Main Street`\n"
        "- Sushi at [Kai](https://kai.example/menu), which is *very* good\n\n"
        "Pick one and I'll book it 🍕."
    )
    assert_same_for_all_chunkings(
        text,
        [
            "Options for tonight",
            "Pizza from the place on Main Street",
            "Sushi at Kai, which is very good",
            "Pick one and I'll book it.",
        ],
    )


def test_long_first_sentence_is_cut_at_a_clause_boundary() -> None:
    first = (
        "Well, there are quite a few things to consider when choosing a laptop for programming, "
        "including the keyboard, the screen, the battery life, the weight"
    )
    text = first + " and of course the price. Let me know what matters most."
    result = split(text, [4])
    assert result[0] == (
        "Well, there are quite a few things to consider when choosing a laptop for programming, "
        "including the keyboard, the screen,"
    )  # cut at the last clause break once the sentence passed 120 characters
    assert " ".join(result) == text
    assert all(len(s) >= 12 for s in result)


def test_only_the_first_sentence_is_cut_early() -> None:
    long = "This one is long too, with commas, " + "and more words, " * 8 + "until it ends."
    result = split("Here is the first sentence. " + long, [5])
    assert result == ["Here is the first sentence.", long]


def test_flush_resets_for_reuse() -> None:
    splitter = SentenceSplitter()
    splitter.feed("Something unfinished")
    assert splitter.flush() == ["Something unfinished"]
    assert splitter.feed("Another reply starts at 9. ") == []
    assert splitter.feed("And goes on.") == ["Another reply starts at 9."]
    assert splitter.flush() == ["And goes on."]


@pytest.mark.parametrize(
    ("raw", "spoken"),
    [
        ("**bold** and __strong__", "bold and strong"),
        ("use `pip install x` now", "use pip install x now"),
        ("```python", ""),
        ("### Heading", "Heading"),
        ("> quoted text", "quoted text"),
        ("* bullet point", "bullet point"),
        ("2 * 3 is six", "2 * 3 is six"),
        ("snake_case stays", "snake_case stays"),
        ("thumbs up 👍🏽 ok", "thumbs up ok"),
    ],
)
def test_speakable(raw: str, spoken: str) -> None:
    assert speakable(raw) == spoken


def test_a_question_is_spoken_without_waiting_for_the_next_token() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("Do you want to hear more about Paris?") == ["Do you want to hear more about Paris?"]
    assert splitter.feed("!") == []  # a stray extra mark is not a sentence of its own
    assert splitter.flush() == []
