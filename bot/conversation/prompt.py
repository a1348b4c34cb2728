"""Chat messages for one reply: the system prompt, recent history and the new utterance.

The output is the ``messages`` list the Mistral chat API takes: a system message, then user and
assistant messages alternating, ending with a user message. Several people share one channel, so
user messages carry the speaker's name, and speech the bot overheard (not addressed to it) is
folded into the user side so it can follow the conversation without answering it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, TypedDict

ChatRole = Literal["system", "user", "assistant"]
class ChatMessage(TypedDict):
    role: ChatRole
    content: str

DEFAULT_SYSTEM_PROMPT = (
    "You are {name}, a voice assistant taking part in a Discord voice channel. Everything you "
    "write is converted to speech and played in the channel, so:\n"
    "- Keep replies short: one to three sentences, unless someone explicitly asks for more.\n"
    "- Write plain, speakable text: no markdown, no lists, no headings, no code blocks, no emojis, "
    "no URLs. Say numbers and symbols the way a person would say them aloud.\n"
    "- Several people may be talking. Each user message starts with the speaker's name "
    '("Alice: ..."); address people by name when it helps, and never prefix your own reply with '
    "a name.\n"
    '- Lines marked "(overheard)" were said in the channel but not to you; use them as context '
    "only.\n"
    '- A reply of yours marked "(interrupted)" was cut off by someone speaking; they did not hear '
    "the rest, so do not assume they did.\n"
    "- If you did not catch what was said, ask briefly."
)
DEFAULT_BOT_NAME = "the assistant"
UNKNOWN_SPEAKER = "Someone"
OVERHEARD_MARK = "(overheard)"
INTERRUPTED_MARK = "(interrupted)"


class HistoryTurn(Protocol):
    """A stored turn; the store's model satisfies this structurally."""

    @property
    def role(self) -> str: ...  # "user" | "assistant" | "context"
    @property
    def speaker_name(self) -> str | None: ...
    @property
    def text(self) -> str: ...
    @property
    def interrupted(self) -> bool: ...


LANGUAGE_NAMES = {
    "en": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian", "pt": "Portuguese",
    "nl": "Dutch", "pl": "Polish", "ru": "Russian", "uk": "Ukrainian", "ja": "Japanese", "zh": "Chinese",
    "ko": "Korean", "ar": "Arabic", "hi": "Hindi", "tr": "Turkish", "sv": "Swedish", "da": "Danish",
    "no": "Norwegian", "fi": "Finnish", "cs": "Czech", "el": "Greek", "he": "Hebrew", "ro": "Romanian",
}


def language_line(language: str | None) -> str:
    """The instruction that makes the reply follow the language it was spoken to in."""
    if not language:
        return ""
    name = LANGUAGE_NAMES.get(language, language)
    return f"\n- The last message was spoken in {name}: answer in {name} ({language})."


def system_prompt(persona: str | None, *, bot_name: str | None = None, language: str | None = None) -> str:
    prompt = DEFAULT_SYSTEM_PROMPT.format(name=bot_name or DEFAULT_BOT_NAME) + language_line(language)
    if persona and persona.strip():
        # The persona comes after the house rules so it can flavour them; it cannot undo the
        # "speakable text" rules without the owner noticing the bot reading markdown aloud.
        prompt += f"\n\nPersona set by this server's admins:\n{persona.strip()}"
    return prompt


def _speaker(name: str | None) -> str:
    return name.strip() if name and name.strip() else UNKNOWN_SPEAKER


def _render(turn: HistoryTurn) -> tuple[ChatRole, str]:
    text = turn.text.strip()
    if turn.role == "user":
        return "user", f"{_speaker(turn.speaker_name)}: {text}"
    if turn.role == "context":
        return "user", f"{OVERHEARD_MARK} {_speaker(turn.speaker_name)}: {text}"
    if turn.role == "assistant":
        return "assistant", f"{text} {INTERRUPTED_MARK}" if turn.interrupted else text
    raise ValueError(f"unknown history role {turn.role!r}")


def build_messages(
    *,
    persona: str | None,
    history: Sequence[HistoryTurn],
    speaker_name: str | None,
    text: str,
    max_turns: int,
    max_chars: int,
    bot_name: str | None = None,
    language: str | None = None,
) -> list[ChatMessage]:
    """Messages for the chat API answering ``speaker_name`` saying ``text``.

    History is trimmed oldest-first to ``max_turns`` turns and ``max_chars`` characters of content
    in total.

    The system prompt and the new utterance are always kept, even if together they exceed
    ``max_chars``; only history is trimmed. ``history`` is oldest first.
    """
    system = system_prompt(persona, bot_name=bot_name, language=language)
    current = f"{_speaker(speaker_name)}: {text.strip()}"
    budget = max_chars - len(system) - len(current)

    kept: list[tuple[ChatRole, str]] = []
    for turn in reversed(history):
        if len(kept) >= max_turns:
            break
        if not turn.text.strip():
            continue
        role, content = _render(turn)
        # +1 for the newline that joins it to a neighbour when merged.
        if len(content) + 1 > budget:
            break
        budget -= len(content) + 1
        kept.append((role, content))
    kept.reverse()
    # The chat API wants the first message after the system prompt to be a user message.
    while kept and kept[0][0] == "assistant":
        kept.pop(0)
    kept.append(("user", current))

    messages: list[ChatMessage] = [{"role": "system", "content": system}]
    for role, content in kept:
        if messages[-1]["role"] == role:
            # Consecutive turns on one side (several people speaking, or overheard speech before
            # a question) become one message so roles alternate.
            messages[-1]["content"] += "\n" + content
        else:
            messages.append({"role": role, "content": content})
    return messages
