"""Custom voices on Mistral (``client.audio.voices``): a guild's clip registered once, then spoken
with its ``voice_id`` instead of re-uploading the clip with every sentence.

Free accounts may not create voices (the API refuses with 402 or 403); ``register`` then returns
``None`` and the caller falls back to sending a compact ``ref_audio`` (``bot.audio.reference``).
"""

from __future__ import annotations

import asyncio
import base64
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .errors import RequestRejected
from .retry import NO_SDK_RETRIES, RetryPolicy

if TYPE_CHECKING:
    from mistralai.client import Mistral

_OPERATION = "voices"
# What a plan without custom voices answers (payment required / forbidden).
_NOT_ON_THIS_PLAN = frozenset({402, 403})


class VoiceRegistry:
    """Creates and deletes custom voices over one injected SDK client."""

    def __init__(self, client: Mistral, *, retry: RetryPolicy, timeout: float = 30.0) -> None:
        self._client = client
        self._retry = retry
        self._timeout = timeout

    async def register(self, *, name: str, sample_mp3: bytes, languages: Sequence[str] = ()) -> str | None:
        """The new voice's id, or ``None`` when this account may not create voices.

        Other failures raise ``MistralError`` (5xx and 429 after the policy's retries).
        """
        encoded = base64.b64encode(sample_mp3).decode("ascii")

        async def create() -> str:
            async with asyncio.timeout(self._timeout):
                voice = await self._client.audio.voices.create_async(
                    name=name,
                    sample_audio=encoded,
                    sample_filename="reference.mp3",
                    languages=list(languages) or None,
                    retries=NO_SDK_RETRIES,
                    timeout_ms=round(self._timeout * 1000),
                )
            return voice.id

        try:
            return await self._retry.run(_OPERATION, create)
        except RequestRejected as rejected:
            if rejected.status in _NOT_ON_THIS_PLAN:
                return None
            raise

    async def custom_voice_ids(self, *, page_size: int = 100) -> set[str]:
        """Ids of every custom voice this account has (all pages)."""
        ids: set[str] = set()
        offset = 0
        while True:

            async def page(offset: int = offset) -> tuple[list[str], int]:
                async with asyncio.timeout(self._timeout):
                    answer = await self._client.audio.voices.list_async(
                        limit=page_size, offset=offset, type_="custom", retries=NO_SDK_RETRIES,
                        timeout_ms=round(self._timeout * 1000),
                    )
                return [voice.id for voice in answer.items], answer.total

            with warnings.catch_warnings():
                # The SDK flags offset paging as deprecated; /v2 has no method in SDK 3.7.0's
                # async client that pages by offset, and this runs once per start.
                warnings.simplefilter("ignore", DeprecationWarning)
                found, total = await self._retry.run(_OPERATION, page)
            ids.update(found)
            offset += len(found)
            if not found or offset >= total:
                return ids

    async def delete(self, voice_id: str) -> bool:
        """Delete a custom voice; ``False`` if Mistral no longer had it."""

        async def delete() -> None:
            async with asyncio.timeout(self._timeout):
                await self._client.audio.voices.delete_async(
                    voice_id=voice_id, retries=NO_SDK_RETRIES, timeout_ms=round(self._timeout * 1000)
                )

        try:
            await self._retry.run(_OPERATION, delete)
        except RequestRejected as rejected:
            if rejected.status == 404:
                return False
            raise
        return True
