"""Backchannels: the "mm-hm", "yeah", "okay" a listener says to show they are following.

Said while the bot speaks, they are not a turn: the reply pauses at the onset and carries on
where it paused once the first transcript words show a backchannel. Judged from words only (the
realtime transcript's first words), in the languages the bot is most often spoken to in.
"""

from __future__ import annotations

import re

# Single-word acknowledgements and their common spellings in transcripts.
_WORDS = frozenset({
    "mm", "mmm", "mhm", "mm-hm", "mm-hmm", "mmhm", "mmhmm", "hm", "hmm", "uh-huh", "uh", "huh", "ah", "oh",
    "yeah", "yes", "yep", "yup", "ya", "okay", "ok", "k", "right", "sure", "alright", "cool", "nice", "wow",
    "great", "true", "exactly", "indeed", "totally", "gotcha", "interesting",
    # French, German, Spanish
    "oui", "ouais", "d'accord", "voilà", "bon", "ja", "genau", "stimmt", "sí", "si", "vale", "claro",
})
# Two-word ones, judged as a pair.
_PAIRS = frozenset({("i", "see"), ("got", "it"), ("makes", "sense"), ("of", "course"), ("all", "right"),
                    ("oh", "really"), ("ah", "bon"), ("je", "vois")})
MAX_WORDS = 4  # longer than this is a turn, whatever its words
_TOKEN = re.compile(r"[\w'-]+")


def words_of(text: str) -> list[str]:
    return [w.strip("-'") or w for w in _TOKEN.findall(text.lower())]


def is_backchannel(text: str) -> bool:
    """True when every word of ``text`` is an acknowledgement (at most ``MAX_WORDS``); False for
    no words at all (noise is not a backchannel) and for anything with content."""
    words = words_of(text)
    if not words or len(words) > MAX_WORDS:
        return False
    index = 0
    while index < len(words):
        if index + 1 < len(words) and (words[index], words[index + 1]) in _PAIRS:
            index += 2
        elif words[index] in _WORDS:
            index += 1
        else:
            return False
    return True
