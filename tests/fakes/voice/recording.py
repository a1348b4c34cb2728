"""What the fake hears from the bot: decrypted Opus frames with their RTP timeline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tests.fakes.voice.audio import decode_opus
from tests.fakes.voice.rtp import OPUS_SILENCE, RtpHeader

DAVE_MAGIC = b"\xfa\xfa"  # every DAVE-protected frame ends with this marker (daveprotocol.com)


@dataclass(frozen=True, slots=True)
class BotFrame:
    sequence: int
    timestamp: int
    opus: bytes
    e2ee: bool  # the frame arrived DAVE-encrypted (and was decrypted by a simulated member)
    # time.monotonic() when the datagram reached the fake (CLOCK_MONOTONIC: comparable across
    # processes on one machine, so benchmarks can line it up with the bot's own stage timings).
    received_at: float = field(default=0.0, compare=False)


@dataclass(slots=True)
class BotAudio:
    frames: list[BotFrame] = field(default_factory=list)
    # DAVE frames no simulated member could decrypt: a bot keying bug shows up here.
    undecryptable: list[bytes] = field(default_factory=list)
    speaking_updates: list[int] = field(default_factory=list)
    _waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = field(default_factory=list)

    def record(self, header: RtpHeader, payload: bytes,
               dave_decrypt: Callable[[bytes], bytes | None]) -> None:
        now = time.monotonic()
        if payload != OPUS_SILENCE and payload.endswith(DAVE_MAGIC):
            opus = dave_decrypt(payload)
            if opus is None:
                self.undecryptable.append(payload)
                return
            self.frames.append(BotFrame(header.sequence, header.timestamp, opus, True, now))
        else:
            self.frames.append(BotFrame(header.sequence, header.timestamp, payload, False, now))
        self._wake()

    def _wake(self) -> None:
        for predicate, future in list(self._waiters):
            if not future.done() and predicate():
                future.set_result(None)
        self._waiters = [(p, f) for p, f in self._waiters if not f.done()]

    async def _wait(self, predicate: Callable[[], bool]) -> None:
        if predicate():
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        await future

    async def wait_for_frames(self, count: int) -> list[BotFrame]:
        """Wait until at least ``count`` frames (silence included) have been recorded."""
        await self._wait(lambda: len(self.frames) >= count)
        return list(self.frames)

    async def wait_for_silence(self) -> None:
        """Wait until the bot ends an utterance: a silence frame after real audio."""
        def ended() -> bool:
            seen_audio = False
            for frame in self.frames:
                if frame.opus != OPUS_SILENCE:
                    seen_audio = True
                elif seen_audio:
                    return True
            return False
        await self._wait(ended)

    def opus_frames(self) -> list[bytes]:
        return [frame.opus for frame in self.frames if frame.opus != OPUS_SILENCE]

    def decode(self) -> np.ndarray:
        """Decode everything heard so far (silence frames skipped) to 48 kHz stereo int16."""
        return decode_opus(self.opus_frames())

    def clear(self) -> None:
        self.frames.clear()
        self.undecryptable.clear()
