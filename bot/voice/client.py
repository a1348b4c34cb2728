"""``VoxcordVoiceClient``: discord.py's ``VoiceClient`` plus the DAVE-aware receive path.

Pass it as ``await channel.connect(cls=VoxcordVoiceClient)``. It builds its
``VoiceConnectionState`` with a websocket hook (discord.py calls the hook after handling each JSON
voice event) so the receiver learns SSRC → user from SPEAKING (op 5) and forgets users on
CLIENT_DISCONNECT (op 13) from the moment the connection exists, before receiving starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import discord
from discord.utils import MISSING
from discord.voice_state import ConnectionFlowState, SocketReader, VoiceConnectionState

from bot.audio.opus import OpusDecoder
from bot.audio.resample import DownmixResampler
from bot.voice.receiver import Admission, Decoder, Resampler, SpeechSink, VoiceReceiver

if TYPE_CHECKING:
    from discord.abc import Connectable

    from bot.voice.stats import ReceiveStats


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


class VoxcordVoiceClient(discord.VoiceClient):
    """A voice client that can hand every other speaker's audio, as 16 kHz mono PCM, to a sink."""

    # discord.py constructs the client as ``cls(client, channel)``; subclass to swap the codecs.
    decoder_factory: ClassVar[Callable[[], Decoder]] = OpusDecoder
    resampler_factory: ClassVar[Callable[[], Resampler]] = DownmixResampler

    def __init__(self, client: discord.Client, channel: Connectable) -> None:
        self._receiver: VoiceReceiver | None = None  # the hook may run before __init__ returns
        self._on_closed: list[Callable[[], None]] = []
        super().__init__(client, channel)
        self._receiver = VoiceReceiver(
            self._connection,
            decoder_factory=type(self).decoder_factory,
            resampler_factory=type(self).resampler_factory,
        )

    def create_connection_state(self) -> VoiceConnectionState:
        return VoxcordConnectionState(self, hook=self._on_voice_ws_message)

    async def _on_voice_ws_message(self, ws: Any, msg: dict[str, Any]) -> None:
        if self._receiver is not None:
            await self._receiver.on_voice_ws_message(ws, msg)

    @property
    def receiver(self) -> VoiceReceiver:
        assert self._receiver is not None
        return self._receiver

    @property
    def receive_stats(self) -> ReceiveStats:
        return self.receiver.stats

    def is_receiving(self) -> bool:
        return self._receiver is not None and self._receiver.receiving

    def start_receiving(self, sink: SpeechSink, *, admit: Admission | None = None) -> None:
        """Deliver every other speaker's audio to ``sink`` on this client's event loop; users that
        ``admit`` refuses are dropped before decryption (call ``receiver.readmit()`` when it changes)."""
        if self.is_receiving():
            raise discord.ClientException("Already receiving audio.")
        self.receiver.start(sink, self.loop, admit=admit)

    def stop_receiving(self) -> None:
        """Stop receiving; the sink gets each speaker's remaining audio and ``on_speaker_gone``."""
        if self.is_receiving():
            self.receiver.stop()

    def add_close_callback(self, callback: Callable[[], None]) -> None:
        """Called once the connection is gone for good, whoever ended it (us, Discord, an error)."""
        self._on_closed.append(callback)

    def cleanup(self) -> None:
        # discord.py calls cleanup() on every final disconnect path (ours, the server's, errors),
        # but not while it reconnects by itself: the place to learn that a session is really over.
        self.stop_receiving()
        super().cleanup()
        callbacks, self._on_closed = self._on_closed, []
        for callback in callbacks:
            callback()
