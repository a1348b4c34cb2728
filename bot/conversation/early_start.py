"""Our eager end: when to prepare a reply ahead of the server's end of turn.

With the server's turn detection, a pause after a transcript that ends like a finished sentence
starts a provisional turn before ``turn.eager_end`` or ``turn.end`` come; the server's events
still confirm or withdraw the reply it prepares (listening's part).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bot.conversation.backchannel import words_of
from bot.conversation.transcription import Transcription

# From this long after the last voiced packet, as soon as the transcript (160 ms behind its
# audio) ends like a finished sentence, the reply is prepared.
EARLY_SILENCE = 0.1
_SENTENCE_ENDS = (".", "?", "!", "。", "？", "！")


class EarlyStart:
    def __init__(self, *, enabled: Callable[[], bool],
                 start: Callable[[Transcription, str], None]) -> None:
        """``enabled``: the server's turn detection is on (pauses are streamed); ``start``:
        prepare a provisional turn answering the transcription's text so far."""
        self._enabled = enabled
        self._start = start

    def check(self, transcription: Transcription) -> None:
        """Checked whenever the evidence may have changed: a pause goes on, the transcript grows,
        and the pause becomes long enough (a timer: after the client's last silence frame no
        packet comes, and the next streamed silence was up to 30 ms later: side_remark)."""
        pauses = transcription.pauses
        if not self._enabled() or pauses is None:
            return
        loop = asyncio.get_running_loop()
        wait = EARLY_SILENCE - pauses.silent_for(loop.time())
        if wait <= 0:
            self._start_early(transcription)
        elif transcription.early_check is None and finished(transcription.partial):
            transcription.early_check = loop.call_later(wait, self._timer, transcription)

    def _timer(self, transcription: Transcription) -> None:
        transcription.early_check = None
        if not transcription.queue.empty():
            # Audio not taken yet (under load a packet comes in the loop turn the timer is due,
            # ahead of it): the audio loop checks once it has it (cb14d5e: a reply withdrawn).
            return
        self.check(transcription)

    def _start_early(self, transcription: Transcription) -> None:
        """A pause after a finished-looking sentence, with no provisional turn made or being made."""
        text = transcription.partial.strip()
        if (transcription.provisional is not None or transcription.starting or transcription.continued
                or transcription.ended or not finished(text)):
            return
        transcription.starting = True
        self._start(transcription, text)


def finished(text: str) -> bool:
    """The transcript so far ends like a finished sentence (and has words, not just "?!")."""
    text = text.strip()
    return text.endswith(_SENTENCE_ENDS) and bool(words_of(text))
