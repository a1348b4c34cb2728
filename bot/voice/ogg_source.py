"""One reply's speech as Ogg Opus pages (Voxtral TTS ``response_format="opus"``): FFmpeg copies
the packets to NUT instead of encoding, or, when they are not single 20 ms frames, decodes and
encodes them as the PCM path does.

Everything else (the packet queue, the prebuffer, ``played_seconds``, barge-in, clean-up) is
``StreamingOpusSource``'s. What differs is the input: pages are written as they come (whole
pages, so FFmpeg's Ogg demuxer never waits inside one), and nothing is padded: FFmpeg's Ogg
demuxer hands on each packet as soon as its page is read (copy: 0.3 ms p50 from page written to
packet out, docs/decisions.md), so no partial frame waits in FFmpeg for silence to push it out,
and silence written into an Ogg stream would not be Ogg.

Whether to copy is decided per reply from the first audio packet's TOC (``bot.audio.ogg_opus``)
before anything is written: a source in the wrong mode is replaced by the player
(``bot.voice.player``) before its FFmpeg has seen a byte.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.audio.ffmpeg import ffmpeg_args
from bot.audio.ogg_opus import OpusPages

from .opus_source import StreamingOpusSource

log = logging.getLogger(__name__)


class OggOpusSource(StreamingOpusSource):
    """An Opus ``AudioSource`` fed with Ogg Opus pages while it plays. One instance per reply.

    ``copy``: its packets are single 20 ms frames and go out as they are; otherwise FFmpeg
    re-encodes them to 20 ms frames."""

    def __init__(self, *, copy: bool, **kwargs: Any) -> None:
        self.copy = copy
        self._warned = False
        super().__init__(**kwargs)

    def _preamble(self) -> bytes:
        return b""  # the Ogg stream's own header pages come with its first audio

    def _ffmpeg_args(self, executable: str) -> list[str]:
        return ffmpeg_args(executable, source="copy" if self.copy else "opus")

    def suits(self, pages: OpusPages) -> bool:
        """Whether this source's mode plays ``pages`` right (unknown until an audio packet)."""
        first = pages.first_packet
        return first is None or first.copyable or not self.copy

    def feed(self, pcm: bytes, sample_format: Any = None) -> None:
        raise TypeError("an Ogg Opus source is fed pages (feed_pages), not PCM")

    def feed_pages(self, pages: OpusPages) -> None:
        """Queue whole Ogg pages for FFmpeg; returns at once (the pipe thread writes them)."""
        if self._finished or self._closed or not pages.data:
            return
        if not self.suits(pages) and not self._warned:
            # A later sentence's stream differs from the first's (the player chose the mode on
            # the first): its packets go out one per 20 ms slot whatever they hold.
            self._warned = True
            log.warning("speech stream switched to %s x %.1f ms Opus frames mid-reply; played as it is",
                        pages.first_packet.count if pages.first_packet else 0,
                        (pages.first_packet.frame_seconds if pages.first_packet else 0) * 1000)
        with self._write_lock:
            self._input.write(pages.data)
            self._audio_written_at = now = self._clock()
            if self.first_pcm_written_at is None:
                self.first_pcm_written_at = now

    def _request_padding(self) -> None:
        """No padding: silence is not Ogg. Copying, FFmpeg holds nothing back; re-encoding (the
        fallback for other frame sizes) it holds ~40 ms until more speech or the reply's end."""
