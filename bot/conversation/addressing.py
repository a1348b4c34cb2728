"""Deciding whether an utterance was meant for the bot.

With several people in a channel most speech is between humans; answering all of it would make
the bot unbearable. Wake-word matching works on ASR output, so it tolerates what speech-to-text
does to names: punctuation and casing ("Voxcord,"), possessives ("Voxcord's"), a name split in
two ("Vox cord") or run together ("voxbot" for "Vox Bot"), and accents.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import get_args

from bot.store.models import AddressingMode

MODES: tuple[AddressingMode, ...] = get_args(AddressingMode)

# Words people put in front of a wake word; removed with it by ``strip_wake_word``.
_GREETINGS = frozenset({"hey", "hi", "hello", "ok", "okay", "yo", "oi", "so"})
_TOKEN = re.compile(r"[\w'’]+")
# ASR may split one spoken name into more tokens than the name has words ("Voxcord" -> "vox cord").
_EXTRA_SPLIT_TOKENS = 2


def _fold(token: str) -> str:
    """Lower-case, strip accents and possessive endings: "Vöxcord’s" -> "voxcord"."""
    decomposed = unicodedata.normalize("NFKD", token.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).replace("’", "'")
    for suffix in ("'s", "s'", "'"):
        if plain.endswith(suffix) and len(plain) > len(suffix):
            plain = plain[: -len(suffix)]
            break
    return plain.replace("'", "").replace("_", "")


def _tokens(text: str) -> list[tuple[str, int, int]]:
    """Folded words of ``text`` with their spans in the original string."""
    return [
        (folded, m.start(), m.end()) for m in _TOKEN.finditer(text) if (folded := _fold(m.group()))
    ]


class AddressingPolicy:
    """Whether the bot should answer an utterance, per the guild's addressing mode."""

    def __init__(self, mode: AddressingMode, wake_words: Sequence[str]) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown addressing mode {mode!r}; expected one of {', '.join(MODES)}")
        self.mode: AddressingMode = mode
        # Each wake word compacted to its letters: "Vox Bot" -> "voxbot".
        self._compact: list[tuple[str, int]] = []
        for word in wake_words:
            parts = [t for t, _, _ in _tokens(word)]
            if parts:
                self._compact.append(("".join(parts), len(parts)))

    def is_addressed(self, transcript: str, humans_in_channel: int) -> bool:
        if self.mode == "always":
            return True
        if self.mode == "auto" and humans_in_channel <= 1:
            return True  # alone with the bot: everything said is for it
        return self._find(transcript) is not None

    def strip_wake_word(self, text: str) -> str:
        """``text`` without the first wake word, a greeting before it and punctuation after it.

        "Hey Voxcord, what time is it?" -> "what time is it?". Text without a wake word is
        returned unchanged (stripped of surrounding whitespace).
        """
        found = self._find(text)
        if found is None:
            return text.strip()
        tokens = _tokens(text)
        first, last = found
        start = tokens[first][1]
        if first > 0 and tokens[first - 1][0] in _GREETINGS:
            start = tokens[first - 1][1]
        end = tokens[last][2]
        before = text[:start].rstrip(" \t,")
        after = text[end:].lstrip()
        if after[:1] in (".", "?", "!", "…"):
            return (before + after).strip() if before else after.lstrip(".?!… ").strip()
        after = after.lstrip(",:;-–— \t")
        return f"{before} {after}".strip()

    def _find(self, text: str) -> tuple[int, int] | None:
        """Indices of the first and last token of the first wake word occurrence."""
        folded = [t for t, _, _ in _tokens(text)]
        for first in range(len(folded)):
            for compact, words in self._compact:
                joined = ""
                for last in range(first, min(len(folded), first + words + _EXTRA_SPLIT_TOKENS)):
                    joined += folded[last]
                    # A plural-looking "voxcords" is ASR for the possessive without an apostrophe.
                    if joined in (compact, compact + "s"):
                        return first, last
                    if not compact.startswith(joined):
                        break
        return None
