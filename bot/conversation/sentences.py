"""Split a streamed chat reply into speakable sentences as soon as each one is complete.

The LLM streams text in deltas that cut words, abbreviations and numbers at arbitrary places, so
a boundary is only confirmed once the text after it is known (a space, and for a period the next
visible character). Each sentence goes to text-to-speech on its own, so splitting too early
("Dr." / "3.") produces audible pauses and splitting too late delays the first audio.
"""

from __future__ import annotations

import re

# Fragments shorter than this ("Yes.", "Okay!") are merged into the next sentence: each TTS call
# costs a round trip, and a lone word synthesised alone sounds clipped.
MIN_SENTENCE_CHARS = 12
# A first sentence longer than this may be cut at a clause boundary so the first audio starts
# sooner; later sentences are synthesised while earlier ones play, so they need no cut.
FIRST_SENTENCE_MAX_CHARS = 120

# Lower-cased, without the trailing period. Words that also end sentences on their own ("no",
# "etc") are handled by the capital-letter rule instead.
ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "cf", "fig", "approx",
        "dept", "est", "inc", "ltd", "co", "corp", "gen", "gov", "sen", "rep", "lt", "col", "capt",
        "sgt", "rev", "hon", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct",
        "nov", "dec", "ca", "min", "max", "vol", "pp", "ed", "eg", "ie",
    }
)  # fmt: skip

# Words that end sentences but also stand before a period mid-sentence ("No. 5", "et al. found"):
# a period after them still waits for the next character, which the capital-letter rule decides.
AMBIGUOUS_BEFORE_PERIOD = frozenset({"etc", "no", "al", "art", "sec", "ch", "op", "ave", "blvd", "rd", "univ", "assn"})
# A period after a plain word at least this long is taken as the end at once, without waiting for
# the next token: that wait cost one token's time (~33 ms at 30 tokens/s) on nearly every reply.
PLAIN_WORD_MIN_CHARS = 3

_TERMINATORS = ".!?…"
# Characters that may follow a terminator and still belong to its sentence: quotes, brackets and
# markdown emphasis ("**Done.**").
_CLOSERS = "\"')]}*_`”’»"
_CLAUSE_BREAK = re.compile(r"[,;:](?=\s)|\s[-–—](?=\s)")
_LIST_NUMBER = re.compile(r"\d{1,2}")

_FENCE = re.compile(r"```[^\s`]*")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_LINE_MARKER = re.compile(r"^[ \t]*(?:#{1,6}[ \t]+|>[ \t]*|[-*+•][ \t]+)", re.MULTILINE)
_EMPHASIS = re.compile(r"\*\*|__|~~|`|(?<!\s)\*|\*(?!\s)|(?<!\w)_(?=\w)|(?<=\w)_(?!\w)")
_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\ufe0f\u200d\U000e0020-\U000e007f]")
_SPACES = re.compile(r"\s+")
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+(?=[.,!?;:…](?:\s|$))")


def speakable(text: str) -> str:
    """Remove the markdown and emojis an LLM may emit, which TTS would otherwise read aloud."""
    text = _FENCE.sub(" ", text)
    text = _LINK.sub(r"\1", text)
    text = _LINE_MARKER.sub("", text)
    text = _EMPHASIS.sub("", text)
    text = _EMOJI.sub("", text)
    text = _SPACES.sub(" ", text).strip()
    return _SPACE_BEFORE_PUNCTUATION.sub("", text)


def _word_before(text: str, end: int) -> str:
    """The whitespace-delimited token ending at ``end``, without opening brackets or quotes."""
    start = end
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    return text[start:end].lstrip("\"'([{“‘«*_")


def _plain_word_before(text: str, dot: int) -> bool:
    """Whether the word before the period at ``dot`` is an ordinary word that ends a sentence:
    letters only (not "3", "U.S", "e.g"), capitalised at most ("Paris", not "NASA"), long enough
    not to be an initial, and no known abbreviation."""
    if dot + 1 < len(text) and text[dot + 1] in _CLOSERS:
        return False  # "yes.)" waits, like any closer
    word = _word_before(text, dot)
    if len(word) < PLAIN_WORD_MIN_CHARS or not word.isalpha() or not word[1:].islower():
        return False
    lowered = word.lower()
    return lowered not in ABBREVIATIONS and lowered not in AMBIGUOUS_BEFORE_PERIOD


def _has_words(text: str) -> bool:
    return any(char.isalnum() for char in text)


class SentenceSplitter:
    """Feed streamed text deltas; get back sentences ready to be spoken, in order.

    One splitter per reply; ``flush`` at the end of the stream returns the rest and resets it.
    """

    def __init__(
        self,
        *,
        min_chars: int = MIN_SENTENCE_CHARS,
        first_max_chars: int = FIRST_SENTENCE_MAX_CHARS,
    ) -> None:
        self._min_chars = min_chars
        self._first_max_chars = first_max_chars
        self._buffer = ""  # raw text not yet emitted
        self._carry = ""  # cleaned short fragments waiting to be joined to the next sentence
        self._emitted = 0

    def feed(self, delta: str) -> list[str]:
        self._buffer += delta
        return self._drain(final=False)

    def flush(self) -> list[str]:
        sentences = self._drain(final=True)
        rest = self._join(self._carry, speakable(self._buffer))
        if _has_words(rest):
            sentences.append(rest)
        self._buffer = self._carry = ""
        self._emitted = 0
        return sentences

    def _drain(self, *, final: bool) -> list[str]:
        out: list[str] = []
        while True:
            end = self._boundary(self._buffer, final=final)
            if end is None and self._emitted == 0 and not out:
                end = self._early_cut(self._buffer)
            if end is None:
                return out
            piece, self._buffer = self._buffer[:end], self._buffer[end:].lstrip()
            text = self._join(self._carry, speakable(piece))
            if not _has_words(text):
                continue  # punctuation alone ("!" after "?") is nothing to say
            if len(text) < self._min_chars:
                self._carry = text
                continue
            self._carry = ""
            self._emitted += 1
            out.append(text)

    @staticmethod
    def _join(first: str, second: str) -> str:
        return f"{first} {second}".strip()

    def _early_cut(self, buffer: str) -> int | None:
        """Cut a long first sentence at its last clause break, to start speaking sooner."""
        if len(self._carry) + len(buffer) <= self._first_max_chars:
            return None
        cuts = [m.end() for m in _CLAUSE_BREAK.finditer(buffer) if m.end() >= self._min_chars]
        return cuts[-1] if cuts else None

    def _boundary(self, text: str, *, final: bool) -> int | None:
        """End index of the first confirmed sentence in ``text``, or None if none is certain yet."""
        i = 0
        n = len(text)
        while i < n:
            char = text[i]
            if char == "\n":
                return i + 1
            if char not in _TERMINATORS:
                i += 1
                continue
            j = i
            while j < n and text[j] in _TERMINATORS:
                j += 1
            run = text[i:j]
            while j < n and text[j] in _CLOSERS:
                j += 1
            if j == n:
                # Nothing after the terminator yet: "3." may become "3.14", "e." may become "e.g.".
                # "?" and "!" cannot grow into anything but a longer run, so they are confirmed
                # now: waiting for the next token costs a token's time on every question. So is
                # a period after a plain word ("France."), which no likely next token continues.
                if final or ("!" in run or "?" in run) and text[j - 1] in "?!":
                    return j
                if j == i + 1 and text[i] == "." and _plain_word_before(text, i):
                    return j
                return None
            if not text[j].isspace():
                i = j  # decimal, URL, "e.g", "U.S": not a boundary
                continue
            k = j
            while k < n and text[k].isspace() and text[k] != "\n":
                k += 1
            if k < n and text[k] == "\n":
                return j
            if "!" in run or "?" in run:
                return j
            if k == n:
                if final or run == "." and _plain_word_before(text, i):
                    return j
                return None  # the rules below need the next visible character
            if self._is_boundary(text, i, run, text[k]):
                return j
            i = j
        return None

    @staticmethod
    def _is_boundary(text: str, dot: int, run: str, next_char: str) -> bool:
        """Whether a period (or ellipsis) at ``dot`` followed by ``next_char`` ends a sentence."""
        if next_char.islower():
            return False  # "e.g. this", "approx. five", "wait... what"
        if "…" in run or len(run) > 1:
            return next_char.isupper()  # "I see... That's odd." splits; "... 42" does not
        word = _word_before(text, dot)
        lowered = word.lower().rstrip(".")
        if lowered.replace(".", "") in ABBREVIATIONS or "." in word:
            return False  # "Dr. Smith", "U.S. Army"
        if len(word) == 1 and word.isupper() and next_char.isupper():
            return False  # an initial: "J. Smith"
        if _LIST_NUMBER.fullmatch(word):
            return not _is_list_number(text, dot, int(word))
        return True


def _is_list_number(text: str, dot: int, number: int) -> bool:
    """Whether "N." at ``dot`` numbers an inline list ("do this: 1. open 2. close")."""
    start = dot - len(str(number))
    before = text[:start].rstrip()
    if number == 1:
        return not before or before[-1] in ":;,\n"
    return re.search(rf"(?<![\d.]){number - 1}\.\s", text[:start]) is not None
