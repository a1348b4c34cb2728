from __future__ import annotations

from dataclasses import dataclass

import pytest

from bot.conversation.prompt import DEFAULT_SYSTEM_PROMPT, build_messages, system_prompt


@dataclass(frozen=True)
class Turn:
    role: str
    speaker_name: str | None
    text: str
    interrupted: bool = False


def build(history: list[Turn], *, max_turns: int = 50, max_chars: int = 100_000, persona: str | None = None):
    return build_messages(
        persona=persona,
        history=history,
        speaker_name="Alice",
        text="What did Bob say?",
        max_turns=max_turns,
        max_chars=max_chars,
        bot_name="Voxcord",
    )


def assert_alternates(messages: list[dict[str, str]]) -> None:
    roles = [m["role"] for m in messages]
    assert roles[0] == "system"
    assert roles[1] == "user" and roles[-1] == "user"
    assert all(a != b for a, b in zip(roles[1:], roles[2:], strict=False))
    assert all(set(m) == {"role", "content"} for m in messages)


def test_system_prompt_sets_the_spoken_style_and_appends_the_persona() -> None:
    prompt = system_prompt("Speak like a pirate.", bot_name="Voxcord")
    assert prompt.startswith("You are Voxcord")
    for rule in ("one to three sentences", "no markdown", "no emojis", "speaker's name"):
        assert rule in prompt
    assert prompt.endswith("Speak like a pirate.")
    assert system_prompt("   ") == DEFAULT_SYSTEM_PROMPT.format(name="the assistant")


def test_history_is_rendered_with_names_marks_and_merged_user_side() -> None:
    history = [
        Turn("user", "Alice", "Hi Voxcord"),
        Turn("assistant", "Voxcord", "Hello Alice! How can I help", interrupted=True),
        Turn("context", "Bob", "I think it will rain"),
        Turn("context", None, "mm"),
        Turn("user", "Carol", "Voxcord, will it?"),
        Turn("assistant", "Voxcord", "Possibly, yes."),
    ]
    messages = build(history, persona="Be cheerful.")
    assert_alternates(messages)
    assert messages[0]["content"].endswith("Be cheerful.")
    assert messages[1:] == [
        {"role": "user", "content": "Alice: Hi Voxcord"},
        {"role": "assistant", "content": "Hello Alice! How can I help (interrupted)"},
        {
            "role": "user",
            "content": "(overheard) Bob: I think it will rain\n(overheard) Someone: mm\nCarol: Voxcord, will it?",
        },
        {"role": "assistant", "content": "Possibly, yes."},
        {"role": "user", "content": "Alice: What did Bob say?"},
    ]


def test_context_right_before_the_utterance_joins_it() -> None:
    messages = build([Turn("assistant", "Voxcord", "Hi."), Turn("context", "Bob", "it's raining")])
    # The leading assistant turn is dropped: the chat API wants a user message first.
    assert messages[1:] == [{"role": "user", "content": "(overheard) Bob: it's raining\nAlice: What did Bob say?"}]


def test_trims_oldest_first_to_max_turns() -> None:
    history = [Turn("user" if i % 2 == 0 else "assistant", "Alice", f"message {i}") for i in range(10)]
    messages = build(history, max_turns=4)
    assert_alternates(messages)
    contents = [m["content"] for m in messages[1:]]
    # Turns 6..9 fit; 7 is kept but 6 (user) leads, so nothing is dropped for alternation.
    assert contents == ["Alice: message 6", "message 7", "Alice: message 8", "message 9", "Alice: What did Bob say?"]


def test_trims_oldest_first_to_max_chars_but_keeps_system_and_utterance() -> None:
    history = [Turn("user", "Alice", "x" * 100), Turn("assistant", "V", "y" * 100), Turn("user", "Bob", "z" * 100)]
    system_len = len(system_prompt(None, bot_name="Voxcord"))
    current_len = len("Alice: What did Bob say?")
    messages = build(history, max_chars=system_len + current_len + 210)
    assert_alternates(messages)
    # Two rendered turns are 105 + 101 chars (+1 each for the joining newline): the third does not fit.
    assert messages[1]["content"].startswith("Bob: zzz")  # "y" assistant turn dropped as a leading assistant
    total = sum(len(m["content"]) for m in messages)
    assert total <= system_len + current_len + 210
    tiny = build(history, max_chars=10)
    assert [m["role"] for m in tiny] == ["system", "user"]
    assert tiny[1]["content"] == "Alice: What did Bob say?"


def test_empty_turns_are_skipped_and_unknown_roles_refused() -> None:
    assert build([Turn("user", "Bob", "   ")])[1:] == [{"role": "user", "content": "Alice: What did Bob say?"}]
    with pytest.raises(ValueError, match="unknown history role"):
        build([Turn("moderator", "Bob", "hi")])
