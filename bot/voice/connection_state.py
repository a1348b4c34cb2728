"""discord.py's ``VoiceConnectionState`` with its reconnect defects and a lost wake-up worked around."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from discord.errors import ConnectionClosed
from discord.voice_state import ConnectionFlowState, VoiceConnectionState

from bot.voice.reader import ReceiveHub, SharedSocketReader, default_receive_hub

log = logging.getLogger(__name__)

# Close codes discord.py's poll loop treats specially (disconnected or moved by Discord, rate
# limited, call terminated): those closes stay discord.py's to handle. 1000 (a normal close) too,
# but it is handled below, as discord.py does.
DISCORD_PY_HANDLES = frozenset({4014, 4021, 4022})
# A drop this long after the previous one is a first failure again (reconnects at once).
STABLE_S = 60.0
BACKOFF_CAP_S = 60.0

Sleep = Callable[[float], Awaitable[None]]


class ReconnectBackoff:
    """When to retry a dropped voice connection: the first drop at once, then discord.py's
    randomised doubling (0–1, 0–2, 0–4 … s, capped) while drops keep coming less than
    ``stable_s`` apart. discord.py's own loop waits 0–2 s even before the first attempt, which
    alone could break the 2 s hearing goal after a full reconnect (issue 15)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        uniform: Callable[[float, float], float] = random.uniform,
        stable_s: float = STABLE_S,
        cap_s: float = BACKOFF_CAP_S,
    ) -> None:
        self._clock, self._uniform = clock, uniform
        self._stable_s, self._cap_s = stable_s, cap_s
        self._failures = 0
        self._last: float | None = None

    def delay(self) -> float:
        now = self._clock()
        if self._last is None or now - self._last >= self._stable_s:
            self._failures = 0
        self._last = now
        self._failures += 1
        if self._failures == 1:
            return 0.0
        return self._uniform(0.0, min(self._cap_s, 2.0 ** (self._failures - 2)))


class VoxcordConnectionState(VoiceConnectionState):
    """discord.py's connection state with two reconnect defects and a lost wake-up worked around.

    Resume (close code 4015, "voice server crashed"): discord.py 2.7.1 re-sends op 4 on the main
    gateway, and Discord answers VOICE_STATE_UPDATE then VOICE_SERVER_UPDATE; in the ``connected``
    state the first changes nothing and the second moves to ``got_voice_server_update``, while the
    resume waits for ``got_both_voice_updates``. Even past that, its handshake waits for a
    SESSION_DESCRIPTION that a resumed session never receives (only RESUMED, opcode 9). Either way
    the resume times out after the 30 s connect timeout and discord.py leaves the channel
    (reproduced against the fake voice server). So a resume is done as a fresh reconnect, like
    the other reconnecting closes below.

    The UDP socket is read by the process's ``ReceiveHub`` thread (``bot/voice/reader.py``), not by
    a ``SocketReader`` thread per connection. That also settles discord.py's socket swap on a
    reconnect: its reader thread stays blocked in ``select([old_socket], timeout=30)`` (closing a
    socket does not wake a ``select`` on Linux), ignoring the new socket for up to 30 s and
    stalling our audio and discord.py's own IP discovery; the hub stops watching the old socket
    when discord.py pauses the reader (before it closes the socket) and watches the new one when
    ``_create_socket`` resumes it.

    Reconnects (any close discord.py would answer with "reconnect after a backoff": 4006 session
    gone, 4009 timeout, a broken socket, a heartbeat timeout; and the 4015 resume above) happen
    here, the first one at once (``ReconnectBackoff``). The other closes go to discord.py's loop.
    """

    def __init__(
        self, *args: Any, backoff: ReconnectBackoff | None = None, sleep: Sleep = asyncio.sleep,
        receive_hub: ReceiveHub | None = None, **kwargs: Any,
    ) -> None:
        self._receive_hub = receive_hub or default_receive_hub()  # before discord.py sets the reader
        super().__init__(*args, **kwargs)
        self.backoff = backoff or ReconnectBackoff()
        self._sleep = sleep

    async def _poll_voice_ws(self, reconnect: bool) -> None:
        while True:
            try:
                await self.ws.poll_event()
            except asyncio.CancelledError:
                return
            except ConnectionClosed as exc:
                if exc.code == 1000:
                    # discord.py's own handling, but decided now: our /leave's close races the
                    # VOICE_STATE_UPDATE that clears ``_expecting_disconnect``, and reading the
                    # close again a few loop turns later lost that race (a second disconnect
                    # made /leave wait out its 30 s timeout in test_voice_commands).
                    if not self._expecting_disconnect:
                        await self.disconnect()
                    return
                if not reconnect or exc.code in DISCORD_PY_HANDLES:
                    # The websocket is closed, so discord.py's loop reads this same close again
                    # at once (aiohttp answers every receive on a closed socket with CLOSED, and
                    # the code stays on the socket) and handles it exactly as it would have.
                    await super()._poll_voice_ws(reconnect)
                    return
                await self._reconnect(f"close code {exc.code}")
            except TimeoutError:
                if not reconnect:
                    await super()._poll_voice_ws(reconnect)  # it times out again, then disconnects
                    return
                await self._reconnect("no voice event in 30 s")

    async def _reconnect(self, why: str) -> None:
        delay = self.backoff.delay()
        log.info("Voice connection dropped (%s); reconnecting in %.2f s", why, delay)
        await self._sleep(delay)
        await self.disconnect(cleanup=False)
        voice_state = self.self_voice_state or self
        try:
            await self._connect(
                reconnect=True, timeout=self.timeout, self_deaf=voice_state.self_deaf,
                self_mute=voice_state.self_mute, resume=False,
            )
        except TimeoutError:
            log.warning("Could not reconnect to voice; retrying")

    async def _wait_for_state(
        self, state: ConnectionFlowState, *other_states: ConnectionFlowState, timeout: float | None = None  # noqa: ASYNC109
    ) -> None:
        # discord.py 2.7.1 waits through utils.sane_wait_for, which wraps Event.wait() in a new
        # task, while the state setter only pulses the event (set, then clear at once). A state
        # change landing before that task first runs is lost, and the connect hangs until its
        # timeout: ~1 /join in 10 right after start, when VOICE_STATE_UPDATE and
        # VOICE_SERVER_UPDATE arrive 1 ms apart (state got_both_voice_updates, event clear, one
        # waiter left). Awaiting Event.wait() here registers the waiter before this task yields.
        states = (state, *other_states)
        while self.state not in states:
            async with asyncio.timeout(timeout):
                await self._state_event.wait()

    # discord.py's __init__ does ``self._socket_reader = SocketReader(self)`` and then ``.start()``:
    # a Thread object not yet started (no OS thread exists until ``start``). The setter keeps a
    # reader served by the hub instead, so ``start`` and everything after reach that one.
    @property  # type: ignore[override]  # SocketReader's interface, not its class (it is a Thread)
    def _socket_reader(self) -> SharedSocketReader:
        return self._shared_reader

    @_socket_reader.setter
    def _socket_reader(self, reader: object) -> None:
        if not isinstance(reader, SharedSocketReader):
            start_paused = getattr(reader, "start_paused", True)
            reader = SharedSocketReader(self, self._receive_hub, start_paused=start_paused)
        self._shared_reader = reader
