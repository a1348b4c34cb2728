"""Streamed speech into a voice channel, loop side: one reply at a time, one FFmpeg per reply.

Flow per reply: ``SpeechPlayer.begin_reply`` spawns FFmpeg before any audio exists (spawning
costs ~12 ms, measured in bench/playback_latency.py; on the spawn thread, ``bot.voice.spawn``, so
not on the loop); TTS chunks are fed as they arrive, every
sentence of the reply into the same FFmpeg so no encoder restart separates them; playback starts
once enough speech is buffered that it will not run dry mid-sentence (``bot.voice.playout``: a
small prebuffer learned from the guild's last replies); ``finish`` closes FFmpeg's stdin so the
tail drains;
``interrupt`` (barge-in) stops the player, kills FFmpeg and drops what was queued. FFmpeg's pipes
are ``bot.voice.opus_source.StreamingOpusSource``'s (on the process's one pipe thread); the packets
go out from the process's one sender thread (``bot.voice.sender``), not an ``AudioPlayer`` per reply.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from bot.audio.frames import S16LE, SampleFormat
from bot.audio.ogg_opus import OpusPages
from bot.voice.ogg_source import OggOpusSource
from bot.voice.opus_source import StreamingOpusSource
from bot.voice.playout import PlayoutHistory
from bot.voice.sender import PacketSender, Playback, VoiceLink, default_sender

log = logging.getLogger(__name__)

# What a reply's FFmpeg reads and does: PCM encoded, Ogg Opus copied, Ogg Opus re-encoded.
SpeechKind = Literal["pcm", "copy", "opus"]


def _kind_of(source: StreamingOpusSource) -> SpeechKind:
    if isinstance(source, OggOpusSource):
        return "copy" if source.copy else "opus"
    return "pcm"


@dataclass(slots=True, eq=False)
class _Reply:
    source: StreamingOpusSource
    done: asyncio.Event
    make_source: Callable[[SpeechKind], StreamingOpusSource]
    playback: Playback | None = None

    @property
    def started(self) -> bool:
        return self.playback is not None


class SpeechPlayer:
    """Plays one reply at a time into a guild's voice connection. One per guild; loop thread only."""

    def __init__(
        self,
        voice_client: VoiceLink,
        *,
        ffmpeg_executable: str,
        clock: Callable[[], float] = time.monotonic,
        sender: PacketSender | None = None,
        ffmpeg_niceness: int = 0,
        speech_format: str = "pcm",
    ) -> None:
        self._voice = voice_client
        # A reply's FFmpeg starts before its speech exists, in the mode the last reply needed
        # (at first: copying, if the TTS is asked for Opus); a reply whose first packet says
        # otherwise gets a new FFmpeg before anything was written (``_source_for``).
        self._kind: SpeechKind = "copy" if speech_format == "opus" else "pcm"
        self._niceness = ffmpeg_niceness
        self._sender = sender if sender is not None else default_sender()
        self._executable = ffmpeg_executable
        self._clock = clock
        self._reply: _Reply | None = None
        self._playout = PlayoutHistory()
        self._paused = False
        self._held = False  # a provisional reply: encoded and buffered, not heard until ``release``
        self._start_timer: asyncio.TimerHandle | None = None
        self._last_played = 0.0
        self._last_first_packet_at: float | None = None
        self._last_first_ready_at: float | None = None

    @property
    def played_seconds(self) -> float:
        """Seconds of the current (or else the last) reply handed to Discord so far."""
        return self._reply.source.played_seconds if self._reply else self._last_played

    @property
    def playing(self) -> bool:
        """A reply is under way: begun and neither played out nor interrupted."""
        return self._reply is not None

    @property
    def source(self) -> StreamingOpusSource | None:
        return self._reply.source if self._reply else None

    @property
    def first_packet_sent_at(self) -> float | None:
        """Clock time the first packet of the current (or else the last) reply went to Discord."""
        return self._reply.source.first_packet_read_at if self._reply else self._last_first_packet_at

    @property
    def first_packet_ready_at(self) -> float | None:
        """Clock time FFmpeg's first packet of the current (or else the last) reply was ready."""
        return self._reply.source.first_packet_ready_at if self._reply else self._last_first_ready_at

    def begin_reply(self, *, held: bool = False) -> None:
        """Spawn FFmpeg for a new reply. A reply still playing is interrupted: the new one wins.
        ``held``: its speech is encoded and buffered as it comes but not heard until ``release``
        (a provisional reply: its turn's end is not confirmed yet)."""
        if self._reply is not None:
            self.interrupt()
        self._paused = False
        self._held = held
        loop = asyncio.get_running_loop()
        replies: list[_Reply] = []  # the reply, once made; its callbacks run after that

        # Called from the pipe thread; they act only for the reply's current source.
        def make_source(kind: SpeechKind) -> StreamingOpusSource:
            source: StreamingOpusSource

            def on_packet(_at: float) -> None:
                _call_soon(loop, maybe_start, source)

            def on_eof() -> None:
                _call_soon(loop, ended, source)

            # No thread of its own: its pipes join the process's pipe thread (bot.voice.pipes).
            if kind == "pcm":
                source = StreamingOpusSource(
                    executable=self._executable, clock=self._clock, on_packet=on_packet, on_eof=on_eof,
                    playout=self._playout, niceness=self._niceness,
                )
            else:
                source = OggOpusSource(
                    copy=kind == "copy", executable=self._executable, clock=self._clock, on_packet=on_packet,
                    on_eof=on_eof, playout=self._playout, niceness=self._niceness,
                )
            return source

        def maybe_start(source: StreamingOpusSource) -> None:
            if replies and replies[0].source is source:
                self._maybe_start(replies[0])

        def ended(source: StreamingOpusSource) -> None:
            if replies and replies[0].source is source:
                self._on_eof(replies[0])

        reply = _Reply(source=make_source(self._kind), done=asyncio.Event(), make_source=make_source)
        replies.append(reply)
        self._reply = reply

    def feed(self, pcm: bytes, sample_format: SampleFormat = S16LE) -> None:
        """Queue 24 kHz mono PCM (TTS speech comes as ``F32LE``). Ignored when no reply is active
        (e.g. after barge-in)."""
        source = self._source_for("pcm")
        if source is not None:
            source.feed(pcm, sample_format)

    def feed_pages(self, pages: OpusPages) -> None:
        """Queue Ogg Opus pages (TTS speech in ``opus``): copied when their packets are single
        20 ms frames, else re-encoded. Ignored when no reply is active."""
        first = pages.first_packet
        source = self._source_for(None if first is None else "copy" if first.copyable else "opus")
        if isinstance(source, OggOpusSource):
            source.feed_pages(pages)

    def _source_for(self, wanted: SpeechKind | None) -> StreamingOpusSource | None:
        """The reply's source for speech that needs ``wanted`` (None: any Ogg source). Before the
        first write, a source in another mode is replaced (its FFmpeg has seen nothing)."""
        reply = self._reply
        if reply is None:
            return None
        source = reply.source
        current = _kind_of(source)
        if wanted is None or wanted == current:
            if wanted is not None and source.first_pcm_written_at is None:
                self._kind = wanted
            return source
        if source.first_pcm_written_at is not None:
            if wanted != "pcm" and current != "pcm":
                return source  # Ogg either way: the source warns that it plays it as it is
            log.warning("speech switched between PCM and Ogg Opus mid-reply; dropped a chunk")
            return None
        log.info("reply speech is %s, not %s: restarting its FFmpeg", wanted, current)
        source.cleanup()
        reply.source = reply.make_source(wanted)
        self._kind = wanted
        return reply.source

    def finish(self) -> None:
        """The reply's audio is complete: let FFmpeg drain it."""
        if self._reply is not None:
            self._reply.source.finish()

    async def wait_done(self) -> float:
        """Wait until the reply has played out (or was interrupted); returns seconds played."""
        reply = self._reply
        if reply is None:
            return self._last_played
        await reply.done.wait()
        return reply.source.played_seconds

    def pause(self) -> None:
        """Fall quiet at once but keep the reply: someone may be starting to talk (a tentative
        onset). The sender stops reading packets; FFmpeg keeps encoding meanwhile. A reply
        still buffering does not start until ``resume``."""
        self._paused = True
        if self._reply is not None and self._reply.playback is not None:
            self._reply.playback.pause()

    def resume(self) -> None:
        """The onset was not speech after all: carry on from the packet after the last one sent
        (the same sample: packets are never dropped or re-read across a pause)."""
        self._paused = False
        if self._reply is None:
            return
        if self._reply.playback is not None:
            self._reply.playback.resume()
        else:
            self._maybe_start(self._reply)

    def release(self) -> None:
        """The held reply may be heard: it starts once its prebuffer is up, which is at once when
        what was buffered while it was held already covers it (the prebuffer's only job is to
        keep playback from running dry)."""
        self._held = False
        if self._reply is not None and not self._reply.started:
            self._maybe_start(self._reply)

    def interrupt(self) -> float:
        """Barge-in: stop now, drop queued audio, kill FFmpeg. Returns seconds actually played."""
        reply, self._reply = self._reply, None
        self._cancel_start_timer()
        if reply is None:
            return 0.0
        played = reply.source.stop_reading()
        if reply.playback is not None:
            reply.playback.stop()
        self._end(reply)
        self._last_played = played
        return played

    def close(self) -> None:
        """Leaving the channel: stop whatever is playing and release FFmpeg."""
        self.interrupt()

    def _maybe_start(self, reply: _Reply) -> None:
        """Start once the buffered speech will not run dry, or schedule the check for then."""
        if reply is not self._reply or reply.started or self._paused or self._held:
            return
        start = reply.source.start_at()
        if start is None:
            return
        delay = start - self._clock()
        if delay > 0:
            self._cancel_start_timer()
            self._start_timer = asyncio.get_running_loop().call_later(delay, self._maybe_start, reply)
            return
        self._cancel_start_timer()
        self._start_playing(reply)

    def _cancel_start_timer(self) -> None:
        if self._start_timer is not None:
            self._start_timer.cancel()
            self._start_timer = None

    def _start_playing(self, reply: _Reply) -> None:
        if reply is not self._reply or reply.started:
            return  # interrupted before its first packet was ready
        loop = asyncio.get_running_loop()
        if not self._voice.is_connected():
            log.warning("Cannot play reply: not connected to voice")
            self._finish_reply(reply)
            return
        reply.playback = self._sender.play(
            self._voice, reply.source, after=lambda error: _call_soon(loop, self._on_played, reply, error), loop=loop,
        )

    def _on_eof(self, reply: _Reply) -> None:
        # FFmpeg ended without a single packet: nothing will call `after`. (With packets, playback
        # still starts when its prebuffer is up or a pause ends.)
        if not reply.started and reply.source.first_packet_ready_at is None:
            self._finish_reply(reply)

    def _on_played(self, reply: _Reply, error: Exception | None) -> None:
        if error is not None:
            log.warning("Reply playback ended with an error: %s", error)
        self._finish_reply(reply)

    def _finish_reply(self, reply: _Reply) -> None:
        if reply is self._reply:
            self._reply = None
            self._last_played = reply.source.played_seconds
            self._last_first_packet_at = reply.source.first_packet_read_at
            self._last_first_ready_at = reply.source.first_packet_ready_at
        self._end(reply)

    @staticmethod
    def _end(reply: _Reply) -> None:
        # Here, not on the sender thread (shared by every guild, it must never wait for a
        # process); waiting for the process here means a finished `wait_done` never leaves an
        # FFmpeg behind.
        reply.source.cleanup()
        reply.done.set()


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:
        log.debug("Event loop closed; dropping playback callback")
