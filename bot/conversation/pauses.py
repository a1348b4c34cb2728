"""Streaming a member's pauses to a server that measures silence in the audio it gets.

Discord clients send nothing while their member is silent (after five Opus-silence frames that
end a talk spurt), but Voxtral 3 decides its turn events on audio time: listening streams silence
through pauses in real time. ``PauseStream`` decides, from packet arrival times alone, when
silence is due and how much; listening does the waiting. Pure: every method takes the time.

- After a loud packet, silence starts only once no packet came for ``slack`` (a late packet in
  the middle of speech must not get a gap inserted before it), and then covers the whole time
  since the last packet, so the server's clock matches ours.
- After ``QUIET_PACKETS`` quiet packets in a row (the client's five silence frames that end a talk
  spurt, or a pause of the member's own), the member is in a pause already: a silence inserted
  there is no gap in speech, so it starts one frame and ``quiet_slack`` after the last packet.
  (One quiet packet is not enough: synthesised speech has near-silent frames between words.)
  With the 80 ms slack the server got the end of every talk spurt's silence in one late burst,
  and its pause, and everything it decides from it, came up to 80 ms late.
- A quiet packet that comes while silence is being streamed is dropped: the silence streamed
  already stands for it (sent as well, it would put the server's clock ahead of ours).
"""

from __future__ import annotations

FRAME = 0.020  # one 20 ms frame of 16 kHz mono: what a Discord packet carries
SLACK = 0.08  # after a loud packet: room for network jitter inside speech
QUIET_SLACK = 0.010  # in a pause, on top of the last packet's own 20 ms frame
QUIET_PACKETS = 3  # quiet packets in a row that make a pause (60 ms)


class PauseStream:
    def __init__(self, now: float, *, slack: float = SLACK, quiet_slack: float = QUIET_SLACK) -> None:
        self._slack = slack
        self._quiet_slack = quiet_slack
        self._covered = now  # the audio sent so far reaches this far on our clock
        self._last_voice = now
        self._quiet = 0  # quiet packets in a row since the last loud one
        self.filling = False  # silence is being streamed (no packet since it started)

    def packet(self, now: float, *, loud: bool) -> bool:
        """A packet arrived; whether to send it (False: the silence streamed already covers it)."""
        if loud:
            self._last_voice, self._quiet = now, 0
        elif self.filling:
            return False
        else:
            self._quiet += 1
        self._covered, self.filling = now, False
        return True

    def due(self) -> float:
        """When the next silence is due, if no packet comes first."""
        if self.filling:
            return self._covered + FRAME
        in_pause = self._quiet >= QUIET_PACKETS
        return self._covered + (FRAME + self._quiet_slack if in_pause else self._slack)

    def fill(self, now: float) -> int:
        """Frames of silence to send now (at least one): the time since the audio sent so far."""
        frames = max(1, int((now - self._covered) / FRAME))
        self._covered += frames * FRAME
        self.filling = True
        return frames

    def silent_for(self, now: float) -> float:
        """Seconds since the last loud packet."""
        return now - self._last_voice
