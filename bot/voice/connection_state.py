"""discord.py's ``VoiceConnectionState`` with its reconnect defects and a lost wake-up worked around."""

from __future__ import annotations

import asyncio

from discord.utils import MISSING
from discord.voice_state import ConnectionFlowState, SocketReader, VoiceConnectionState


class VoxcordConnectionState(VoiceConnectionState):
    """discord.py's connection state with two reconnect defects and a lost wake-up worked around.

    Resume (close code 4015, "voice server crashed"): discord.py 2.7.1 re-sends op 4 on the main
    gateway, and Discord answers VOICE_STATE_UPDATE then VOICE_SERVER_UPDATE; in the ``connected``
    state the first changes nothing and the second moves to ``got_voice_server_update``, while the
    resume waits for ``got_both_voice_updates``. Even past that, its handshake waits for a
    SESSION_DESCRIPTION that a resumed session never receives (only RESUMED, opcode 9). Either way
    the resume times out after the 30 s connect timeout and discord.py leaves the channel
    (reproduced against the fake voice server). So a resume is done as the fresh reconnect that
    discord.py uses for other close codes, minus its 0–2 s backoff: the server just asked for it.

    On a reconnect discord.py pauses its ``SocketReader``, closes the UDP socket and later makes a
    new one (``_create_socket``). The reader thread, though, is still blocked in
    ``select([old_socket], timeout=30)``: closing a socket does not wake a ``select`` on Linux, so
    the reader ignores the new socket for up to 30 s (measured: nothing received 20 s after the
    swap), stalling both our audio and discord.py's own IP discovery. Here the new socket gets a
    fresh reader carrying the same listeners; the stuck one is told to stop and exits when its
    ``select`` times out, with no listeners left to call.
    """

    # discord.py's own signature (it passes these as keywords), hence the `timeout` parameter.
    async def _connect(
        self, reconnect: bool, timeout: float, self_deaf: bool, self_mute: bool, resume: bool  # noqa: ASYNC109
    ) -> None:
        if resume:  # only the 4015 path asks for a resume
            await self.disconnect(cleanup=False)
        await super()._connect(reconnect, timeout, self_deaf, self_mute, False)

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

    def _create_socket(self) -> None:
        reconnecting = self.socket is not MISSING
        super()._create_socket()
        if not reconnecting:
            return
        old = self._socket_reader
        fresh = SocketReader(self, start_paused=False)
        for callback in list(old._callbacks):
            fresh.register(callback)
        old._callbacks.clear()
        old.stop()
        self._socket_reader = fresh
        fresh.start()
