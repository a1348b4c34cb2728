"""Counters for the receive path and a rate-limited logger for per-packet failures.

Counters are plain ints bumped from the voice socket reader thread; reading them from the event
loop gives a consistent-enough snapshot for logs and tests (each increment is atomic under the GIL).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields

from bot.voice.rtp import IP_DISCOVERY, NOT_RTP, OTHER_PAYLOAD, RTCP, classify


@dataclass(slots=True)
class DaveStats:
    """What the DAVE layer did with each frame; ``failures`` is keyed by reason (see ``dave.py``)."""

    decrypted: int = 0
    passthrough: int = 0  # unencrypted frames accepted (protocol 0, or a transition window)
    silence: int = 0  # the Opus silence frame, which DAVE never encrypts
    recovered: int = 0  # frames held until the commit carrying their key was processed (in decrypted)
    failures: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())


@dataclass(slots=True)
class ReceiveStats:
    """Per-connection receive counters. ``packets`` counts every datagram the reader handed us."""

    packets: int = 0
    rtcp: int = 0
    ip_discovery: int = 0
    not_rtp: int = 0
    other_payload: int = 0
    truncated: int = 0  # malformed: too short for its header, bad extension or padding length
    own_ssrc: int = 0
    unknown_ssrc: int = 0  # dropped: no SPEAKING (op 5) mapping arrived in time
    identified_ssrcs: int = 0  # SSRCs never announced, mapped by the DAVE key that opened them
    transport_failures: int = 0  # AEAD authentication failed (wrong key, tampering)
    decrypted: int = 0  # transport-decrypted audio packets
    duplicates: int = 0
    dropped_late: int = 0
    resyncs: int = 0  # sequence jumps too large to conceal (reconnects, long stalls)
    decoded: int = 0
    decode_errors: int = 0
    concealed: int = 0  # 20 ms frames synthesised by Opus PLC/FEC for lost or undecodable packets
    frames_out: int = 0  # 16 kHz chunks handed to the sink
    internal_errors: int = 0  # bugs caught so they cannot kill discord.py's reader thread
    dave: DaveStats = field(default_factory=DaveStats)

    def count_not_audio(self, data: bytes) -> None:
        """A datagram that is not an Opus RTP packet long enough to open, by kind."""
        kind = classify(data)
        if kind == RTCP:
            self.rtcp += 1
        elif kind == IP_DISCOVERY:
            self.ip_discovery += 1
        elif kind == NOT_RTP:
            self.not_rtp += 1
        elif kind == OTHER_PAYLOAD:
            self.other_payload += 1
        else:  # TRUNCATED, or AUDIO too short to hold a tag and nonce
            self.truncated += 1

    def snapshot(self) -> dict[str, object]:
        out: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "dave"}
        out["dave"] = {
            "decrypted": self.dave.decrypted,
            "passthrough": self.dave.passthrough,
            "silence": self.dave.silence,
            "recovered": self.dave.recovered,
            "failures": dict(self.dave.failures),
        }
        return out


class RateLimitedLog:
    """At most one log line per key per ``interval`` seconds, reporting how many were suppressed.

    Per-packet failures arrive 50 times a second per speaker; logging each would flood the log and
    cost more than the audio work itself.
    """

    __slots__ = ("_clock", "_interval", "_last", "_logger", "_suppressed")

    def __init__(
        self, logger: logging.Logger, *, interval: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(self, level: int, key: str, msg: str, *args: object, exc_info: bool = False) -> bool:
        """Log unless ``key`` was logged within the interval; returns whether it logged."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            msg += " (%d similar suppressed)"
            args = (*args, suppressed)
        self._logger.log(level, msg, *args, exc_info=exc_info)
        return True
