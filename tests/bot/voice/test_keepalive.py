"""The UDP keepalive on its own, in virtual time."""

from __future__ import annotations

import asyncio
import struct

import pytest

from bot.voice.keepalive import KEEPALIVE_BYTES, KEEPALIVE_INTERVAL_S, UdpKeepalive


class VirtualTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps = 0

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps += 1
        if self.sleeps > 100:
            raise asyncio.CancelledError  # end the loop after 100 periods


async def test_one_counter_datagram_per_period_while_connected() -> None:
    time = VirtualTime()
    sent: list[tuple[float, bytes]] = []

    def connection_up() -> bool:
        # Down between 100 s and 130 s of virtual time, as during a reconnect.
        return not 100 <= time.now < 130

    keepalive = UdpKeepalive(lambda d: sent.append((time.now, d)), connection_up, sleep=time.sleep)
    with pytest.raises(asyncio.CancelledError):
        await keepalive.run()

    assert KEEPALIVE_INTERVAL_S <= 5.0  # discord.js's period; Discord needs one at least every 15 s
    assert all(len(data) == KEEPALIVE_BYTES for _, data in sent)
    counters = [struct.unpack_from("<I", data)[0] for _, data in sent]
    assert counters == list(range(len(sent)))
    times = [at for at, _ in sent]
    assert times[0] == 0.0  # the first one at once
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert max(g for a, g in zip(times, gaps, strict=False) if not 95 <= a < 130) == KEEPALIVE_INTERVAL_S
    assert not any(100 <= at < 130 for at in times)  # nothing while not connected


async def test_a_socket_error_is_counted_and_the_next_period_sends_again() -> None:
    calls = []

    def send(data: bytes) -> None:
        calls.append(data)
        if len(calls) == 1:
            raise OSError("socket closed by a reconnect")

    keepalive = UdpKeepalive(send, lambda: True)
    assert keepalive.send_one() is False
    assert keepalive.send_one() is True
    assert (keepalive.failed, keepalive.sent) == (1, 1)
    assert [struct.unpack_from("<I", d)[0] for d in calls] == [0, 1]
