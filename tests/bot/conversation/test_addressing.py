from __future__ import annotations

import pytest

from bot.conversation.addressing import AddressingPolicy


@pytest.mark.parametrize(
    "transcript",
    [
        "Voxcord, what's the weather?",
        "hey VOXCORD what time is it",
        "What do you think, Voxcord?",
        "Is that Voxcord's opinion?",
        "is that voxcords opinion",
        "Hey Vox cord, play something.",
        "Vöxcord: tell me a joke",
    ],
)
def test_wake_word_variants_are_recognised(transcript: str) -> None:
    policy = AddressingPolicy("wake_word", ["Voxcord"])
    assert policy.is_addressed(transcript, humans_in_channel=3)


@pytest.mark.parametrize(
    "transcript",
    [
        "What's the weather like?",
        "The voxcordian empire rises",  # not a whole word
        "vox is short for voice",
        "",
    ],
)
def test_without_the_wake_word_nothing_is_addressed(transcript: str) -> None:
    policy = AddressingPolicy("wake_word", ["Voxcord"])
    assert not policy.is_addressed(transcript, humans_in_channel=1)


def test_multi_word_names_match_split_or_joined() -> None:
    policy = AddressingPolicy("wake_word", ["Vox Bot"])
    assert policy.is_addressed("okay vox bot, lights off", humans_in_channel=2)
    assert policy.is_addressed("Voxbot lights off", humans_in_channel=2)
    assert not policy.is_addressed("vox is a bot", humans_in_channel=2)


def test_any_of_several_wake_words() -> None:
    policy = AddressingPolicy("wake_word", ["Jarvis", "Voxcord", "  "])
    assert policy.is_addressed("jarvis, lights", humans_in_channel=2)
    assert policy.is_addressed("voxcord lights", humans_in_channel=2)
    assert not policy.is_addressed("lights", humans_in_channel=2)


def test_always_answers_everything() -> None:
    policy = AddressingPolicy("always", ["Voxcord"])
    assert policy.is_addressed("anything at all", humans_in_channel=5)


def test_auto_answers_everything_when_alone_else_needs_the_wake_word() -> None:
    policy = AddressingPolicy("auto", ["Voxcord"])
    assert policy.is_addressed("what's the time", humans_in_channel=1)
    assert not policy.is_addressed("what's the time", humans_in_channel=2)
    assert policy.is_addressed("Voxcord, what's the time", humans_in_channel=2)


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown addressing mode"):
        AddressingPolicy("sometimes", ["Voxcord"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "stripped"),
    [
        ("Hey Voxcord, what's the weather?", "what's the weather?"),
        ("Voxcord: tell me a joke", "tell me a joke"),
        ("What do you think, Voxcord?", "What do you think?"),
        ("Ask vox cord about it", "Ask about it"),
        ("No wake word here ", "No wake word here"),
    ],
)
def test_strip_wake_word(text: str, stripped: str) -> None:
    assert AddressingPolicy("wake_word", ["Voxcord"]).strip_wake_word(text) == stripped


def test_strip_keeps_terminal_punctuation_and_drops_leading_punctuation() -> None:
    policy = AddressingPolicy("wake_word", ["Voxcord"])
    assert policy.strip_wake_word("Thanks, Voxcord.") == "Thanks."
    assert policy.strip_wake_word("Voxcord? Are you there?") == "Are you there?"
