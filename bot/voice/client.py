"""``VoxcordVoiceClient``: discord.py's ``VoiceClient`` plus the DAVE-aware receive path.

Pass it as ``await channel.connect(cls=VoxcordVoiceClient)``. It builds its
``VoiceConnectionState`` with a websocket hook (discord.py calls the hook after handling each JSON
voice event) so the receiver learns SSRC → user from SPEAKING (op 5) and forgets users on
CLIENT_DISCONNECT (op 13) from the moment the connection exists, before receiving starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import discord
from discord.voice_state import VoiceConnectionState

from bot.audio.frames import STT_CHANNELS, STT_SAMPLE_RATE
from bot.audio.opus import OpusDecoder
from bot.audio.resample import AlreadyMono16k, DownmixResampler
from bot.voice.connection_state import VoxcordConnectionState
from bot.voice.handoff import SpeechSink
from bot.voice.keepalive import KEEPALIVE_INTERVAL_S, UdpKeepalive
from bot.voice.receiver import VoiceReceiver
from bot.voice.speakers import Admission, Decoder, Resampler

if TYPE_CHECKING:
    from discord.abc import Connectable

    from bot.voice.stats import ReceiveStats


class VoxcordVoiceClient(discord.VoiceClient):
    """A voice client that can hand every other speaker's audio, as 16 kHz mono PCM, to a sink."""

    # discord.py constructs the client as ``cls(client, channel)``; subclass to swap the codecs.
    decoder_factory: ClassVar[Callable[[], Decoder]] = OpusDecoder
    resampler_factory: ClassVar[Callable[[], Resampler]] = DownmixResampler
    keepalive_interval: ClassVar[float] = KEEPALIVE_INTERVAL_S
    # How a reconnect waits out its backoff (tests record the delays instead of sleeping them).
    reconnect_sleep: ClassVar[Callable[[float], Awaitable[None]]] = asyncio.sleep

    @classmethod
    def decoding(cls, mode: Literal["48k", "16k"]) -> type[VoxcordVoiceClient]:
        """The client class for a decode mode (``VOICE_DECODE``): 48k decodes 48 kHz stereo then
        downmixes and resamples; 16k has libopus decode straight to 16 kHz mono."""
        if mode == "48k":
            return cls

        def decoder() -> Decoder:
            return OpusDecoder(sample_rate=STT_SAMPLE_RATE, channels=STT_CHANNELS)

        return type(f"{cls.__name__}16k", (cls,), {"decoder_factory": decoder, "resampler_factory": AlreadyMono16k})

    def __init__(self, client: discord.Client, channel: Connectable) -> None:
        self._receiver: VoiceReceiver | None = None  # the hook may run before __init__ returns
        self._on_closed: list[Callable[[], None]] = []
        super().__init__(client, channel)
        self._receiver = VoiceReceiver(
            self._connection,
            decoder_factory=type(self).decoder_factory,
            resampler_factory=type(self).resampler_factory,
        )
        connection = self._connection
        self.keepalive = UdpKeepalive(
            connection.send_packet, connection.is_connected, interval=type(self).keepalive_interval
        )
        self._keepalive_task: asyncio.Task[None] | None = None

    # discord.py's own signature (it passes these as keywords), hence the `timeout` parameter.
    async def connect(
        self, *, reconnect: bool, timeout: float, self_deaf: bool = False, self_mute: bool = False  # noqa: ASYNC109
    ) -> None:
        await super().connect(reconnect=reconnect, timeout=timeout, self_deaf=self_deaf, self_mute=self_mute)
        # One task for the life of the client: discord.py's own reconnects keep this client, and
        # the keepalive skips the periods in which it is not connected.
        if self._keepalive_task is None:
            self._keepalive_task = self.loop.create_task(self.keepalive.run(), name="voice-udp-keepalive")

    def create_connection_state(self) -> VoiceConnectionState:
        return VoxcordConnectionState(self, hook=self._on_voice_ws_message, sleep=type(self).reconnect_sleep)

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
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
            self._keepalive_task = None
        super().cleanup()
        callbacks, self._on_closed = self._on_closed, []
        for callback in callbacks:
            callback()
