"""A simulated call member whose voice reaches the bot exactly as Discord relays it.

Each frame is Opus-encoded, DAVE-encrypted with the member's own ``davey`` session, wrapped in
RTP with the member's SSRC (announced first with SPEAKING, opcode 5), carrying a one-byte header
extension like real clients, and transport-encrypted with the bot's session key. Sequence and
timestamp follow the true media timeline (+1 / +960 per 20 ms frame, also across dropped frames),
so the bot can detect loss and gaps. Impairments are chosen by frame index so tests are exact.
"""

from __future__ import annotations

import asyncio
import random
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

import davey
import numpy as np

from tests.fakes.voice.audio import SAMPLE_RATE, encode_opus
from tests.fakes.voice.rtp import (
    OPUS_SILENCE,
    SAMPLES_PER_FRAME,
    VP8_PAYLOAD_TYPE,
    VP8_RTX_PAYLOAD_TYPE,
    RtpHeader,
    TransportCipher,
    audio_level_extension,
    rtcp_receiver_report,
    seal_rtp,
)

if TYPE_CHECKING:
    from tests.fakes.voice.server import FakeVoiceServer
    from tests.fakes.voice.session import BotSession, VoiceChannel

FRAME_SECONDS = 0.020
SPEAKING_MICROPHONE = 1


@dataclass(frozen=True, slots=True)
class SentFrame:
    sequence: int
    timestamp: int
    opus: bytes
    delivered: bool  # False when the frame was dropped on purpose (``loss``)


class SimulatedSpeaker:
    def __init__(self, server: FakeVoiceServer, channel: VoiceChannel, user_id: int, ssrc: int,
                 *, seed: int = 0) -> None:
        self._server = server
        self._channel = channel
        self.user_id = user_id
        self.ssrc = ssrc
        self._rng = random.Random(seed)
        self.sequence = self._rng.randrange(0, 1 << 16)  # RTP starts at random values (RFC 3550)
        self.timestamp = self._rng.randrange(0, 1 << 32)
        self._nonce = 0
        self.announced = False
        self.announcements = 0  # SPEAKING events sent to the bot
        self.sent: list[SentFrame] = []

    # ----- the happy path -----
    async def speak(self, pcm: np.ndarray | bytes, *, realtime: bool = True,
                    loss: set[int] | float = frozenset(), reorder: set[int] = frozenset(),
                    duplicate: set[int] = frozenset(), corrupt: set[int] = frozenset(),
                    extension: bool = True, trailing_silence: int = 5,
                    padding: dict[int, int] | None = None) -> list[SentFrame]:
        """Send ``pcm`` (48 kHz stereo int16) as 20 ms frames; return what was sent.

        ``loss``: frame indices to drop (or a probability, drawn from the speaker's seed);
        ``reorder``: indices whose packet is sent after the next one; ``duplicate``: sent twice;
        ``corrupt``: one ciphertext byte flipped, so transport authentication fails.
        ``padding``: frame index -> bytes of RTP padding (P bit set) on that packet.
        ``trailing_silence`` frames of Opus silence follow, as Discord clients send on release.
        """
        return await self.speak_opus(encode_opus(pcm), realtime=realtime, loss=loss, reorder=reorder,
                                     duplicate=duplicate, corrupt=corrupt, extension=extension,
                                     trailing_silence=trailing_silence, padding=padding)

    async def speak_opus(self, frames: list[bytes], *, realtime: bool = True,
                         loss: set[int] | float = frozenset(), reorder: set[int] = frozenset(),
                         duplicate: set[int] = frozenset(), corrupt: set[int] = frozenset(),
                         extension: bool = True, trailing_silence: int = 5,
                         padding: dict[int, int] | None = None) -> list[SentFrame]:
        """Like ``speak`` but with ready-made Opus packets (sent byte-for-byte)."""
        await self.announce(True)
        frames = list(frames) + [OPUS_SILENCE] * trailing_silence
        dropped = self._pick_losses(loss, len(frames))
        loop = asyncio.get_running_loop()
        start = loop.time()
        held: bytes | None = None
        result: list[SentFrame] = []
        for index, opus in enumerate(frames):
            if realtime:
                # Absolute schedule, so pacing does not drift with encryption time.
                await asyncio.sleep(max(0.0, start + index * FRAME_SECONDS - loop.time()))
            packet = await self._packet(opus, extension=extension, corrupt=index in corrupt,
                                        padding=(padding or {}).get(index, 0))
            result.append(SentFrame(self.sequence, self.timestamp, opus, index not in dropped))
            self._advance(1)
            if index in dropped:
                continue
            copies = 2 if index in duplicate else 1
            if index in reorder and held is None:
                held = packet
                continue
            for _ in range(copies):
                self._send(packet)
            if held is not None:
                self._send(held)
                held = None
        if held is not None:
            self._send(held)
        await self.announce(False)
        self.sent += result
        return result

    def pause(self, seconds: float) -> None:
        """Advance the media clock without sending, like a client that stops transmitting."""
        self._advance(0, samples=int(seconds * SAMPLE_RATE))

    async def announce(self, speaking: bool) -> None:
        """SPEAKING (op 5) to the bot; the first one also tells it this user's SSRC."""
        session = self._bot_session()
        if session is None:
            return
        if speaking or self.announced:
            await session.send_json(5, {
                "user_id": str(self.user_id), "ssrc": self.ssrc,
                "speaking": SPEAKING_MICROPHONE if speaking else 0})
            self.announced = True
            self.announcements += 1

    # ----- raw injection hooks -----
    async def send_rtp(self, opus: bytes, *, dave: bool = True, key: bytes | None = None,
                       sequence: int | None = None, timestamp: int | None = None,
                       truncate: int | None = None, extension: bool = True) -> bytes:
        """Send one hand-made packet; ``key`` overrides the transport key (wrong-key test)."""
        packet = await self._packet(opus, dave=dave, key=key, extension=extension,
                                    sequence=sequence, timestamp=timestamp)
        if truncate is not None:
            packet = packet[:truncate]
        self._send(packet)
        return packet

    def send_raw(self, data: bytes) -> None:
        self._send(data)

    @property
    def video_ssrc(self) -> int:
        return self.ssrc + 1  # Discord allocates a member's video SSRCs right after its audio one

    async def share_screen(self, frames: int, *, seed: int = 0) -> int:
        """Go live: VIDEO (op 12) announcing the stream, then ``frames`` VP8 frames on the video SSRC,
        each followed by an RTX retransmission on the RTX SSRC, DAVE-encrypted as video the way a
        client sends them. Returns the number of datagrams sent. None of it is audio."""
        session = self._bot_session()
        if session is None or session.cipher is None:
            return 0
        video, rtx = self.video_ssrc, self.video_ssrc + 1
        await session.send_json(12, {
            "user_id": str(self.user_id), "audio_ssrc": self.ssrc, "video_ssrc": video,
            "streams": [{"type": "screen", "rid": "100", "ssrc": video, "rtx_ssrc": rtx, "active": True,
                         "quality": 100, "max_bitrate": 2_500_000, "max_framerate": 30,
                         "max_resolution": {"type": "fixed", "width": 1280, "height": 720}}]})
        group = self._channel.group
        rng = random.Random(seed)
        sent = 0
        for index in range(frames):
            # A VP8 keyframe-shaped payload: 3-byte frame tag, start code, 640x360, then noise.
            frame = bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0x68, 0x01])
            frame += rng.randbytes(300)
            payload = frame
            if group.protocol_version > 0:
                await group.wait_member_ready(self.user_id)
                payload = bytes(group.session(self.user_id).encrypt(davey.MediaType.video, davey.Codec.vp8, frame))
            for ssrc, payload_type, body in ((video, VP8_PAYLOAD_TYPE, b"\x90\x80" + payload),
                                             (rtx, VP8_RTX_PAYLOAD_TYPE, struct.pack(">H", index) + payload)):
                header = RtpHeader(index, index * 3000, ssrc, payload_type=payload_type,
                                   extension=audio_level_extension())
                self._nonce = (self._nonce + 1) & 0xFFFFFFFF
                self._send(seal_rtp(session.cipher, header, body, self._nonce))
                sent += 1
        return sent

    def send_rtcp(self) -> None:
        self._send(rtcp_receiver_report(self.ssrc))

    async def close(self) -> None:
        self.announced = False

    # ----- internals -----
    def _bot_session(self) -> BotSession | None:
        return self._server.bot_in_channel(self._channel.guild_id, self._channel.channel_id)

    def _pick_losses(self, loss: set[int] | float, count: int) -> set[int]:
        if isinstance(loss, float):
            return {i for i in range(count) if self._rng.random() < loss}
        return set(loss)

    def _advance(self, frames: int, *, samples: int = 0) -> None:
        self.sequence = (self.sequence + frames) & 0xFFFF
        self.timestamp = (self.timestamp + frames * SAMPLES_PER_FRAME + samples) & 0xFFFFFFFF

    async def _packet(self, opus: bytes, *, dave: bool = True, key: bytes | None = None,
                      extension: bool = True, corrupt: bool = False, padding: int = 0,
                      sequence: int | None = None, timestamp: int | None = None) -> bytes:
        session = self._bot_session()
        group = self._channel.group
        payload = opus
        if dave and group.protocol_version > 0 and opus != OPUS_SILENCE:
            await group.wait_member_ready(self.user_id)
            if group.protocol_version > 0:
                payload = bytes(group.session(self.user_id).encrypt_opus(opus))
        header = RtpHeader(self.sequence if sequence is None else sequence,
                           self.timestamp if timestamp is None else timestamp, self.ssrc,
                           extension=audio_level_extension() if extension else None, padding=padding)
        if session is None or session.cipher is None:
            return b""
        cipher = session.cipher if key is None else TransportCipher(session.cipher.mode, key)
        self._nonce = (self._nonce + 1) & 0xFFFFFFFF
        packet = seal_rtp(cipher, header, payload, self._nonce)
        if corrupt:
            flip = len(header.authenticated_part()) + 1
            packet = packet[:flip] + bytes([packet[flip] ^ 0xFF]) + packet[flip + 1 :]
        return packet

    def _send(self, packet: bytes) -> None:
        if packet:
            self._server.send_raw(self._channel.guild_id, packet)


def nonce_of(packet: bytes) -> int:
    """The transport nonce counter appended to an rtpsize packet."""
    return struct.unpack(">I", packet[-4:])[0]
