"""A guild's voice clip, made cheap to speak with: registered once as a Mistral custom voice where
the plan allows it, else reduced once to a compact MP3 reference; the remote voice is deleted when
the clip is reset or replaced.

Today's clip rides on every speech request as ~1.9 MB of base64 (~0.8 s of upload per sentence
on 20 Mbit/s). After ``prepare`` a request carries a voice id (a few bytes) or the compact
reference (~100 KB as base64). Preparation runs when a clip is stored, and at start for clips
stored before migration 6; until a clip is prepared the bot still speaks with the clip itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Protocol

from bot.audio.reference import compact_reference
from bot.mistral.errors import MistralError
from bot.store.models import VoiceClip

log = logging.getLogger(__name__)


class ClipStore(Protocol):
    async def get(self, guild_id: int) -> VoiceClip | None: ...

    async def set_voice(self, guild_id: int, sha256: str, *, voice_id: str | None, reference: bytes | None) -> bool: ...

    async def unprepared(self) -> list[int]: ...

    async def registered(self) -> list[tuple[int, str]]: ...

    async def drop_voice(self, guild_id: int, voice_id: str) -> bool: ...


class Registry(Protocol):
    async def register(self, *, name: str, sample_mp3: bytes, languages: Sequence[str] = ()) -> str | None: ...

    async def delete(self, voice_id: str) -> bool: ...

    async def custom_voice_ids(self) -> set[str]: ...


class ClipVoices:
    """Prepares and forgets the remote side of guilds' voice clips. ``registry=None``: never
    registers (``TTS_REGISTER_VOICES=false``), every clip is spoken from its compact reference."""

    def __init__(
        self, clips: ClipStore, registry: Registry | None,
        *, language_of: Callable[[int], Awaitable[str | None]] | None = None,
    ) -> None:
        self._clips = clips
        self._registry = registry
        # The guild's set language (/admin settings), given to Mistral with the voice: the voices
        # API takes ``languages``; a speech request has no language field.
        self._language_of = language_of
        self._plan_refuses = False  # learnt from the first refusal: a free plan stays free
        self._tasks: set[asyncio.Task[None]] = set()

    def clip_changed(self, old: VoiceClip | None, new: VoiceClip | None) -> None:
        """A guild's clip was stored (``new``), replaced or reset (``old``). The remote work runs in
        the background: an interaction must be answered within 3 s, registration can take longer."""
        if old is not None and old.voice_id is not None:
            self._spawn(self.forget(old), f"forget voice of guild {old.guild_id}")
        if new is not None:
            self._spawn(self._prepare_quietly(new), f"prepare voice of guild {new.guild_id}")

    async def settled(self) -> None:
        """Wait for the background work started so far (tests, and shutdown)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def aclose(self, *, grace: float = 5.0) -> None:
        """Give pending work (a deletion, above all) a few seconds, then cancel the rest."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        for task in self._tasks:
            task.cancel()
        await self.settled()

    def _spawn(self, work: Coroutine[object, object, None], what: str) -> None:
        task = asyncio.get_running_loop().create_task(work, name=what)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _prepare_quietly(self, clip: VoiceClip) -> None:
        try:
            await self.prepare(clip)
        except Exception:
            # Not fatal: an unprepared clip is still spoken (from the whole clip) and is prepared
            # again at the next start.
            log.exception("Preparing guild %s's voice clip failed", clip.guild_id)

    async def prepare(self, clip: VoiceClip) -> VoiceClip:
        """Compute the clip's reference, register it as a voice if allowed, and keep both with
        the clip. Returns the clip as stored (unchanged if it was replaced meanwhile)."""
        reference = await asyncio.to_thread(compact_reference, clip.audio)
        voice_id = await self._register(clip, reference)
        if not await self._clips.set_voice(clip.guild_id, clip.sha256, voice_id=voice_id, reference=reference):
            # Replaced or reset while we worked (the new clip is prepared on its own), or another
            # process sharing the database prepared it first: our voice would never be used.
            await self._delete(voice_id)
            return clip
        log.info("Guild %s voice clip prepared: %s", clip.guild_id,
                 "registered voice" if voice_id else f"{len(reference)} byte reference")
        return dataclasses.replace(clip, voice_id=voice_id, reference=reference)

    async def forget(self, clip: VoiceClip | None) -> None:
        """Delete the remote voice of a clip that was reset or replaced (privacy: Mistral keeps
        no copy of a voice the guild no longer uses)."""
        if clip is not None:
            await self._delete(clip.voice_id)

    async def check_registered(self) -> int:
        """Stop speaking with registered voices Mistral no longer has (deleted in its console, or
        the API key changed): those clips fall back to their reference. Returns how many."""
        registered = await self._clips.registered()
        if not registered or self._registry is None:
            return 0
        existing = await self._registry.custom_voice_ids()
        dropped = 0
        for guild_id, voice_id in registered:
            if voice_id not in existing and await self._clips.drop_voice(guild_id, voice_id):
                log.warning("Guild %s's registered voice is gone at Mistral; speaking from its reference", guild_id)
                dropped += 1
        return dropped

    async def prepare_stored(self) -> int:
        """Prepare every stored clip that is not yet (those from before migration 6)."""
        prepared = 0
        for guild_id in await self._clips.unprepared():
            clip = await self._clips.get(guild_id)
            if clip is not None and not clip.prepared:
                await self.prepare(clip)
                prepared += 1
        return prepared

    def prepare_stored_in_background(self) -> None:
        self._spawn(self._prepare_stored_quietly(), "prepare stored voice clips")

    async def _prepare_stored_quietly(self) -> None:
        try:
            await self.check_registered()
            if prepared := await self.prepare_stored():
                log.info("Prepared %d voice clip(s) stored before voice registration", prepared)
        except Exception:
            log.exception("Preparing stored voice clips failed; they are spoken from the whole clip")

    async def _register(self, clip: VoiceClip, reference: bytes) -> str | None:
        if self._registry is None or self._plan_refuses:
            return None
        language = await self._language_of(clip.guild_id) if self._language_of is not None else None
        try:
            voice_id = await self._registry.register(name=f"voxcord-{clip.guild_id}-{clip.sha256[:12]}",
                                                     sample_mp3=reference, languages=[language] if language else [])
        except MistralError as error:
            # The reference works on every plan: speak with it rather than fail the clip.
            log.warning("Guild %s voice registration failed (%s); using the compact reference", clip.guild_id, error)
            return None
        if voice_id is None:
            self._plan_refuses = True
            log.info("This Mistral plan cannot create voices; clips are sent as compact references")
        return voice_id

    async def _delete(self, voice_id: str | None) -> None:
        if voice_id is None or self._registry is None:
            return
        try:
            await self._registry.delete(voice_id)
        except MistralError as error:
            log.warning("Could not delete Mistral voice %s (%s); delete it in the Mistral console", voice_id, error)
