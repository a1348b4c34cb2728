"""One reply's speech as a discord.py ``AudioSource``: TTS PCM in, 20 ms Opus packets out, through
one FFmpeg (command line in ``bot.audio.ffmpeg.ffmpeg_args``).

Threads: the packet sender (``bot.voice.sender``, one thread for every guild) takes a packet
every 20 ms with ``poll``, which never waits (discord.py's ``read``, which waits up to
``UNDERRUN_WAIT``, is kept for other players). Whoever has audio for FFmpeg's stdin (``feed`` on
the event loop; padding on the sender's thread) queues it, and the process's one pipe thread
(``bot.voice.pipes``) writes it and parses FFmpeg's stdout into a packet queue, so nothing waits
on FFmpeg and the loop makes no syscall per chunk. The loop-side owner of a source is ``bot.voice.player.SpeechPlayer``,
which starts playback when the source's ``start_at`` says the buffered speech will not run dry
(``bot.voice.playout``).

Nothing here inserts silence into a sentence: FFmpeg gets each TTS chunk in 5 ms blocks and writes
each packet as soon as it is encoded, so no audio waits inside FFmpeg for more to come, except the
20 ms frame being filled. Only when the stream has run dry (the reader found no packet) is that
last partial frame pushed out with the least silence that completes it.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import discord

from bot.audio.ffmpeg import INPUT_SAMPLE_BYTES, ffmpeg_args, wav_stream_header
from bot.audio.frames import (
    F32LE,
    FRAME_DURATION_S,
    OPUS_SILENCE,
    S16LE,
    SAMPLE_WIDTHS,
    TTS_SAMPLE_RATE,
    SampleFormat,
)
from bot.audio.playback_pcm import clip_float32, int16_to_float32
from bot.voice.nut import NutError, NutParser
from bot.voice.pipes import READ_SIZE, PipeHub, PipeWriter, default_hub
from bot.voice.playout import REJOIN, PlayoutHistory, PlayoutSegment
from bot.voice.spawn import Spawn, in_background, lower_priority

log = logging.getLogger(__name__)

FRAME_SECONDS = FRAME_DURATION_S
# OPUS_SILENCE is returned on underrun so the player keeps its 20 ms cadence: blocking instead
# would make AudioPlayer send the late packets in a burst to catch up, which Discord clients play
# back garbled.
# How long ``read`` waits for a late packet before sending silence instead.
UNDERRUN_WAIT = 0.005
# What FFmpeg holds of the input once it has written every packet it can: the 20 ms frame being
# filled (the WAV demuxer passes input on in whole frames, ``INPUT_BLOCK_BYTES``) and libopus's
# look-ahead (312 samples at 48 kHz, the stream's pre-skip). A pad completes the packet holding
# the last real sample's look-ahead. Nothing else delays: the encoder runs at the input's rate.
FRAME_INPUT_SAMPLES = round(TTS_SAMPLE_RATE * FRAME_DURATION_S)  # 480
LOOKAHEAD_SAMPLES = 156

_END = object()  # pipe thread -> reader: FFmpeg's output has ended


def pad_samples(written: int) -> int:
    """Silence (input samples) that pushes everything up to sample ``written`` out of FFmpeg."""
    frames = -(-(written + LOOKAHEAD_SAMPLES) // FRAME_INPUT_SAMPLES)
    return frames * FRAME_INPUT_SAMPLES - written


class StreamingOpusSource(discord.FFmpegAudio):
    """An Opus ``AudioSource`` fed with PCM while it plays. One instance per reply.

    ``on_packet(at)`` (until playback has started), ``on_first_packet(at)`` and ``on_eof()`` are
    called from the pipe thread. ``playout`` is the guild's history of what its replies needed.
    """

    def __init__(
        self,
        *,
        executable: str,
        clock: Callable[[], float] = time.monotonic,
        on_first_packet: Callable[[float], None] | None = None,
        on_eof: Callable[[], None] | None = None,
        on_packet: Callable[[float], None] | None = None,
        playout: PlayoutHistory | None = None,
        sample_rate: int = TTS_SAMPLE_RATE,
        hub: PipeHub | None = None,
        spawn: Spawn | None = None,
        niceness: int = 0,
    ) -> None:
        self._clock = clock
        self._on_first_packet = on_first_packet
        self._on_packet = on_packet
        self._history = playout if playout is not None else PlayoutHistory()
        # Segment and dry state, shared by the pump and the reader.
        self._state_lock = threading.Lock()
        self._segment = PlayoutSegment(self._history)
        self._dry_since: float | None = None  # the reader found no packet, from then on
        self._rebuffering = False  # ran dry for long: wait for the new segment's start
        self.underruns = 0  # reads that found no packet once playback had started
        self.restarts = 0  # segments begun after a long dry spell
        self._audio_written_at = -math.inf  # the last write of speech (not padding)
        self._on_eof = on_eof
        self._sample_rate = sample_rate
        self._write_lock = threading.Lock()  # speech (the loop) and padding (the sender), in order
        self._written = 0  # samples written to FFmpeg's stdin, padding included
        self._packets: queue.SimpleQueue[bytes | object] = queue.SimpleQueue()
        self._carry = b""  # the start of a sample split across chunks
        self._finished = False
        self._closed = False  # read() returns b"" from now on
        self._cleaned = False
        self._cleanup_lock = threading.Lock()
        self._pad_armed = False  # real audio was written since the last padding
        self._packets_read = 0
        self._padded_samples = 0
        # (start, length) in seconds of the fed-audio timeline, so played time can exclude them.
        self._pads: list[tuple[float, float]] = []
        self.first_pcm_written_at: float | None = None
        self.first_packet_ready_at: float | None = None
        self.first_packet_read_at: float | None = None

        # Our own pipe rather than stdin=PIPE: FFmpegAudio would then start its own writer thread
        # reading a file-like source, which we cannot wake or stop cleanly on barge-in. Made here,
        # so ``feed`` writes into it before FFmpeg runs; FFmpeg is started by ``spawn``
        # (``bot.voice.spawn``: off the event loop by default).
        read_fd, write_fd = os.pipe()
        self._popen: subprocess.Popen[bytes] | None = None
        self._spawn_lock = threading.Lock()
        self._spawn_state = "pending"  # -> "spawning" -> "done", or "cancelled" by an early cleanup
        self._spawned = threading.Event()
        self._parser = NutParser()
        self._hub = hub if hub is not None else default_hub()
        self._input = PipeWriter(write_fd, self._hub)
        if preamble := self._preamble():
            self._input.write(preamble)
        args = self._ffmpeg_args(executable)[1:]
        (spawn or in_background)(functools.partial(self._spawn, executable, args, read_fd, niceness))

    def _preamble(self) -> bytes:
        """What FFmpeg's stdin gets before any speech."""
        return wav_stream_header(self._sample_rate)

    def _ffmpeg_args(self, executable: str) -> list[str]:
        return ffmpeg_args(executable)

    def _spawn(self, executable: str, args: list[str], read_fd: int, niceness: int) -> None:
        with self._spawn_lock:
            cancelled = self._spawn_state == "cancelled"
            self._spawn_state = "spawning"
        try:
            if not cancelled:
                super().__init__("pipe:", executable=executable, args=args, stdin=read_fd)
                self._popen = self._process
                lower_priority(self._popen.pid, niceness)
        except Exception:
            log.exception("FFmpeg could not be started; the reply ends unheard")
        finally:
            os.close(read_fd)  # FFmpeg has its copy; without FFmpeg, feeding now fails silently (EPIPE)
            with self._spawn_lock:
                self._spawn_state = "done"
            self._spawned.set()
        if cancelled:
            return
        if self._popen is None:
            self._input.abort()
            self._end_of_output()
            return
        os.set_blocking(self._stdout.fileno(), False)
        self._hub.watch_read(self._stdout, self._on_readable)

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The FFmpeg ``Popen``, kept after clean-up so callers can check it has exited; waits for
        a spawn under way. None if it could not start or was cleaned up before it was started."""
        self._spawned.wait()
        return self._popen

    @property
    def played_seconds(self) -> float:
        """Seconds of fed audio handed to the player: Opus packets read × 20 ms, minus the padding
        among them, so it lines up with the PCM timeline the caller fed."""
        played = self._packets_read * FRAME_SECONDS
        padding = sum(min(max(played - start, 0.0), length) for start, length in list(self._pads))
        return played - padding

    @property
    def padded_seconds(self) -> float:
        """Silence inserted to push audio stuck in FFmpeg out during underruns."""
        return self._padded_samples / self._sample_rate

    def is_opus(self) -> bool:
        return True

    def feed(self, pcm: bytes, sample_format: SampleFormat = S16LE) -> None:
        """Queue mono PCM for FFmpeg; returns at once, with no syscall and no numpy: the pipe thread
        converts it to the float32 FFmpeg reads (``F32LE``, TTS speech: clipped to [-1, 1]) and
        writes it. Chunks may split samples."""
        if self._finished or self._closed:
            return
        width = SAMPLE_WIDTHS[sample_format]
        data = self._carry + pcm if self._carry else pcm
        cut = len(data) - len(data) % width
        # Whole samples only, so a padding block can never land between a sample's bytes.
        self._carry = data[cut:]
        if not cut:
            return
        audio = data[:cut] if cut < len(data) else data
        # Converted on the pipe thread: numpy on the loop lets go of the GIL (bot.audio.playback_pcm).
        convert = clip_float32 if sample_format == F32LE else int16_to_float32
        with self._write_lock:
            self._input.write(audio, convert)
            self._written += cut // width
            self._audio_written_at = now = self._clock()
            self._pad_armed = True
            if self.first_pcm_written_at is None:
                self.first_pcm_written_at = now

    def finish(self) -> None:
        """No more audio: FFmpeg encodes what it has, flushes and exits."""
        if not self._finished:
            self._finished = True
            with self._write_lock:
                self._input.close()

    def start_at(self) -> float | None:
        """Clock time from which playback will not run dry (``None`` before any packet)."""
        with self._state_lock:
            return self._segment.start_at()

    def stop_reading(self) -> float:
        """Make ``read`` end playback from now on; returns the seconds played until now."""
        self._closed = True
        return self.played_seconds

    def read(self) -> bytes:
        """discord.py's ``AudioSource.read``: waits up to ``UNDERRUN_WAIT`` for a late packet."""
        packet = self._take(UNDERRUN_WAIT)
        return OPUS_SILENCE if packet is None else packet

    def poll(self, *, last_chance: bool) -> bytes | None:
        """``read`` that never blocks, for ``bot.voice.sender``: ``None`` when the packet due is not
        ready yet, unless it is the ``last_chance`` (then silence stands in for it)."""
        packet = self._take(None, dry=last_chance)
        if packet is None and last_chance:
            return OPUS_SILENCE
        return packet

    def _take(self, timeout: float | None, *, dry: bool = True) -> bytes | None:
        if self._closed:
            return b""
        if self._rebuffering and not self._restart_due():
            return OPUS_SILENCE
        try:
            packet = self._packets.get(timeout=timeout) if timeout else self._packets.get_nowait()
        except queue.Empty:
            if dry:
                self._ran_dry()
            return None
        if packet is _END:
            self._packets.put(_END)  # later reads see the end too
            self._check_process_returncode()  # a crash becomes the player's error, not an exception
            return b""
        assert isinstance(packet, bytes)
        if self._packets_read == 0 or self._dry_since is not None:
            with self._state_lock:
                self._segment.started()
                self._dry_since = None
        self._packets_read += 1
        if self.first_packet_read_at is None:
            self.first_packet_read_at = self._clock()
        return packet

    def _ran_dry(self) -> None:
        if self._packets_read == 0:
            return  # not started: nothing has run dry
        self.underruns += 1
        with self._state_lock:
            if self._dry_since is None:
                self._dry_since = self._clock()
        self._request_padding()

    def _restart_due(self) -> bool:
        """After a long dry spell the next speech starts a segment of its own, with its own wait."""
        with self._state_lock:
            start = self._segment.start_at()
            if start is None or self._clock() < start:
                return False
            self._rebuffering = False
            return True

    def _request_padding(self) -> None:
        with self._write_lock:
            if not self._pad_armed or self._finished:
                return
            self._pad_armed = False
            pad = pad_samples(self._written)
            self._input.write(bytes(pad * INPUT_SAMPLE_BYTES))
            self._pads.append((self._written / self._sample_rate, pad / self._sample_rate))
            self._padded_samples += pad
            self._written += pad

    def _on_readable(self) -> bool:
        """FFmpeg's stdout is readable (on the pipe thread): queue the packets it completes.
        False at the end of its output (the hub then closes the pipe)."""
        try:
            data = os.read(self._stdout.fileno(), READ_SIZE)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        if data:
            try:
                packets = self._parser.feed(data)
            except NutError:
                log.warning("FFmpeg's output is not NUT as expected; ending the reply", exc_info=True)
                self._end_of_output()
                return False
            for packet in packets:
                self._packet_ready(packet)
            return True
        if self._parser.leftover:  # a killed FFmpeg leaves a truncated packet
            log.debug("FFmpeg output ended mid-packet (%d bytes left)", self._parser.leftover)
        self._end_of_output()
        return False

    def _packet_ready(self, packet: bytes) -> None:
        at = self._clock()
        with self._state_lock:
            if self._dry_since is not None and at - self._dry_since > REJOIN and not self._rebuffering:
                # The next sentence was late: TTS latency, not jitter. Learn nothing from it and
                # give its speech a start of its own.
                self._segment.close()
                self._segment = PlayoutSegment(self._history)
                self._rebuffering = True
                self.restarts += 1
            # While the stream is dry, packets with no speech written since it ran dry are the
            # padding's (the end of a sentence), not late speech.
            late_speech = self._dry_since is None or self._audio_written_at >= self._dry_since
            self._segment.packet_ready(at, learn=late_speech)
            waiting = self._packets_read == 0
        self._packets.put(packet)
        if self.first_packet_ready_at is None:
            self.first_packet_ready_at = at
            self._notify(self._on_first_packet, at)
        if waiting:
            self._notify(self._on_packet, at)

    def _end_of_output(self) -> None:
        self._packets.put(_END)
        self._notify(self._on_eof)

    @staticmethod
    def _notify(callback: Callable[..., None] | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            log.exception("Playback callback failed")

    def cleanup(self) -> None:
        """Stop FFmpeg; idempotent, safe from any thread, leaves no process. The pipe thread
        closes stdout once the killed FFmpeg's output has ended."""
        with self._cleanup_lock:
            if self._cleaned or not hasattr(self, "_spawned"):
                return
            self._cleaned = True
            self._closed = True
            with self._state_lock:
                self._segment.close()
            log.debug("Reply playback ended: %d packets, %d underruns, %.0f ms padding, playout needs %s",
                      self._packets_read, self.underruns, self.padded_seconds * 1000,
                      [round(need * 1000) for need in self._history.needs])
            self._finished = True
            with self._write_lock:
                self._input.abort()  # queued audio is dropped
            with self._spawn_lock:
                if self._spawn_state == "pending":
                    self._spawn_state = "cancelled"  # never started: nothing to stop
                    self._spawned.set()
                    return
            self._spawned.wait()  # a spawn under way (~1 ms): then stop what it started
            self._stopped = True  # tells FFmpegAudio the exit below is not a failure
            popen = self._popen
            if popen is None:
                return
            if popen.poll() is None:
                popen.kill()
            popen.wait()
