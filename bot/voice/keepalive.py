"""A UDP keepalive so a listen-only bot is not dropped from Discord's media forwarding.

Discord stops relaying voice to a UDP endpoint that sends nothing: py-cord's receive went silent
after 5–9 min when its keepalive misfired (py-cord #3388), hermes-agent's bot after ~60 s of
silence (hermes-agent PR #1418). discord.py 2.7.1 sends no UDP keepalive at all: after IP
discovery its socket carries only the player's packets (and five silence frames when playback
ends), so a bot that only listens goes deaf. discord.js sends an undocumented 8-byte counter every
5 s "to ensure voice receivers still work" (discord.js PR #9202, ``VoiceUDPSocket.keepAlive``):
a little-endian u32 counter in an 8-byte buffer. The same datagram and period here, well inside
the 15 s floor.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Awaitable, Callable

_log = logging.getLogger(__name__)

KEEPALIVE_INTERVAL_S = 5.0
KEEPALIVE_BYTES = 8
_COUNTER_LIMIT = 1 << 32


class UdpKeepalive:
    """Sends one 8-byte counter datagram every ``interval`` while ``connected()`` says so."""

    def __init__(
        self,
        send: Callable[[bytes], None],
        connected: Callable[[], bool],
        *,
        interval: float = KEEPALIVE_INTERVAL_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._send = send
        self._connected = connected
        self._interval = interval
        self._sleep = sleep
        self._buffer = bytearray(KEEPALIVE_BYTES)
        self.counter = 0
        self.sent = 0
        self.failed = 0

    async def run(self) -> None:
        """Until cancelled: one datagram now, then one per interval."""
        while True:
            self.send_one()
            await self._sleep(self._interval)

    def send_one(self) -> bool:
        """Send the next counter if connected; a socket error (a reconnect swapping the socket) is
        counted and the next period tries again."""
        if not self._connected():
            return False
        struct.pack_into("<I", self._buffer, 0, self.counter)
        self.counter = (self.counter + 1) % _COUNTER_LIMIT
        try:
            self._send(bytes(self._buffer))
        except (OSError, AttributeError, ValueError):
            # AttributeError/ValueError: discord.py's socket is MISSING or closed mid-reconnect.
            self.failed += 1
            _log.debug("Voice UDP keepalive not sent", exc_info=True)
            return False
        self.sent += 1
        return True
