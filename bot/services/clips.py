"""The guild's reference voice: download an uploaded clip safely, check and normalise it, and store
it once the speaker's consent is confirmed."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from bot.audio.clip import ClipLimits, ClipRejected, NormalisedClip, normalise_clip
from bot.errors import ClipRefusedError
from bot.store.models import VoiceClip
from bot.store.repositories import VoiceClipRepository

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_read=10)


@dataclass(frozen=True, slots=True)
class ClipUpload:
    """What the bot knows about an uploaded file before reading it."""

    url: str
    filename: str
    declared_size: int


# Told after a guild's clip was stored (new) or reset (None), with the clip it replaced: the
# remote voice registration follows (bot/services/voices.py ClipVoices.clip_changed).
ClipChanged = Callable[[VoiceClip | None, VoiceClip | None], None]


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB"


class VoiceClipService:
    def __init__(
        self,
        *,
        repository: VoiceClipRepository,
        http: aiohttp.ClientSession,
        limits: ClipLimits,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        on_change: ClipChanged | None = None,
    ) -> None:
        self._on_change = on_change
        self._repository = repository
        self._http = http
        self._limits = limits
        self._clock = clock

    @property
    def limits(self) -> ClipLimits:
        return self._limits

    async def download(self, upload: ClipUpload) -> bytes:
        """Read at most ``max_bytes``: a lying size field or an endless body stops at the limit."""
        limit = self._limits.max_bytes
        if upload.declared_size > limit:
            size, cap = _megabytes(upload.declared_size), _megabytes(limit)
            # Rounded, a file just over the limit would read "10 MB; the limit is 10 MB".
            over = (f"That file is {size}; the limit is {cap}." if size != cap
                    else f"That file is larger than the {cap} limit.")
            raise ClipRefusedError(f"{over} Upload a shorter clip (10 to 30 seconds of clear speech is ideal).")
        if upload.declared_size == 0:
            raise ClipRefusedError("That file is empty. Upload an audio clip of someone speaking.")
        buffer = bytearray()
        try:
            async with self._http.get(upload.url, timeout=DOWNLOAD_TIMEOUT) as response:
                if response.status != 200:
                    raise ClipRefusedError("I couldn't download that attachment from Discord; try again.")
                async for chunk in response.content.iter_chunked(64 * 1024):
                    buffer += chunk
                    if len(buffer) > limit:
                        raise ClipRefusedError(
                            f"That file is larger than {_megabytes(limit)}. Upload a shorter clip."
                        )
        except (aiohttp.ClientError, TimeoutError) as error:
            log.warning("Clip download failed: %s", type(error).__name__)
            raise ClipRefusedError("I couldn't download that attachment from Discord; try again.") from error
        return bytes(buffer)

    async def check(self, upload: ClipUpload) -> NormalisedClip:
        """Download and decode the upload; a clip that is not usable speech is refused here,
        before anyone is asked to confirm consent."""
        data = await self.download(upload)
        try:
            # Decoding is CPU work on untrusted input: off the event loop.
            return await asyncio.to_thread(normalise_clip, data, self._limits)
        except ClipRejected as rejected:
            raise ClipRefusedError(rejected.reason) from None

    async def store(self, guild_id: int, clip: NormalisedClip, *, set_by_id: int, set_by_name: str) -> VoiceClip:
        """Keep a checked clip as the guild's voice (only after the speaker's consent was confirmed)."""
        stored = VoiceClip(
            guild_id=guild_id, audio=clip.wav, sample_rate=clip.sample_rate, duration_s=clip.duration_s,
            sha256=clip.sha256, source_format=clip.source_format, set_by_id=set_by_id, set_by_name=set_by_name,
            set_at=self._clock(),
        )
        old = await self._repository.get(guild_id) if self._on_change is not None else None
        await self._repository.set(stored)
        if self._on_change is not None:
            self._on_change(old, stored)
        # Who confirmed, when and which audio: the row keeps the same three facts.
        log.info("Guild %s voice clip stored after consent confirmed by %s (sha256 %s)",
                 guild_id, set_by_id, stored.sha256)
        return stored

    async def get(self, guild_id: int) -> VoiceClip | None:
        return await self._repository.get(guild_id)

    async def reset(self, guild_id: int) -> bool:
        old = await self._repository.get(guild_id) if self._on_change is not None else None
        removed = await self._repository.delete(guild_id)
        if removed and self._on_change is not None:
            self._on_change(old, None)
        return removed
