"""Streamed speech into a voice channel: TTS PCM in, 20 ms Opus packets out, through one FFmpeg.

Flow per reply: ``SpeechPlayer.begin_reply`` spawns FFmpeg before any audio exists (spawning
costs ~12 ms, measured in bench/playback_latency.py); TTS chunks are fed as they arrive, every
sentence of the reply into the same FFmpeg so no encoder restart separates them; playback starts
when the first packet is ready; ``finish`` closes FFmpeg's stdin so the tail drains;
``interrupt`` (barge-in) stops the player, kills FFmpeg and drops what was queued.

Threads: discord.py's ``AudioPlayer`` calls ``read`` from its own thread every 20 ms. A writer
thread feeds FFmpeg's stdin (a write blocks when FFmpeg's pipe is full, which must not stall the
event loop) and a pump thread parses stdout into a packet queue, so ``read`` never waits on FFmpeg.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import discord
import ffmpeg
from discord.oggparse import OggError, OggStream

from bot.audio.frames import OPUS_SILENCE, TTS_SAMPLE_RATE

log = logging.getLogger(__name__)

SAMPLE_WIDTH = 2  # s16le mono
FRAME_SECONDS = 0.020
OPUS_BITRATE = "64k"
# OPUS_SILENCE is returned on underrun so the player keeps its 20 ms cadence: blocking instead
# would make AudioPlayer send the late packets in a burst to catch up, which Discord clients play
# back garbled.
# How long ``read`` waits for a late packet before sending silence instead.
UNDERRUN_WAIT = 0.005
# FFmpeg's raw PCM demuxer reads stdin in blocks of ~0.1 s rounded down to a power of two
# (2048 samples = 85 ms at 24 kHz), and the resampler + libopus hold ~11-27 ms more (both measured
# with FFmpeg 9.0; see bench/playback_latency.py). Audio short of a full block stays inside
# FFmpeg until more arrives; on underrun we push it out with this much silence, at most.
DEMUX_BLOCK_SAMPLES = 2048
ENCODER_DELAY_SAMPLES = 720  # 30 ms, above the measured upper bound
# FFmpeg's raw-PCM demuxer holds input until a whole block arrives, so a first TTS chunk shorter
# than a block would wait for the next one (67 ms in bench/turns.py). If no more audio follows
# this soon, the first chunk is flushed with silence instead.
FIRST_AUDIO_FLUSH_SECONDS = 0.002
JOIN_TIMEOUT = 2.0

_END = object()  # pump -> reader: FFmpeg's output has ended
_PAD = object()  # reader -> writer: push stuck audio out with silence
_CLOSE = object()  # -> writer: close FFmpeg's stdin


def ffmpeg_args(executable: str, *, sample_rate: int = TTS_SAMPLE_RATE) -> list[str]:
    """FFmpeg command: s16le mono on stdin -> Ogg Opus (48 kHz stereo, 20 ms frames) on stdout."""
    source = ffmpeg.input(
        "pipe:",
        f="s16le",
        ar=sample_rate,
        ac=1,
        # The format is given, so there is nothing to probe; probing would wait for input.
        probesize=32,
        analyzeduration=0,
        fflags="nobuffer",
    )
    # Discord wants stereo. Plain "-ac 2" upmixes mono at -3 dB per channel (measured); copying
    # the channel keeps the TTS level.
    source = source.filter("pan", "stereo|FL<FC|FR<FC")  # "<" renormalises: unity gain
    output = source.output(
        "pipe:",
        f="ogg",
        acodec="libopus",
        ar=48_000,
        ac=2,
        frame_duration=20,
        application="voip",
        fec=1,
        packet_loss=10,
        # One page per packet, flushed at once; the default 1 s pages hold audio back that long.
        page_duration=20_000,
        flush_packets=1,
        map_metadata=-1,
        **{"b:a": OPUS_BITRATE},
    )
    return output.global_args("-hide_banner", "-nostdin", "-loglevel", "error").compile(cmd=executable)


class StreamingOpusSource(discord.FFmpegAudio):
    """An Opus ``AudioSource`` fed with PCM while it plays. One instance per reply.

    ``on_first_packet(at)`` and ``on_eof()`` are called from the pump thread.
    """

    def __init__(
        self,
        *,
        executable: str,
        clock: Callable[[], float] = time.monotonic,
        on_first_packet: Callable[[float], None] | None = None,
        on_eof: Callable[[], None] | None = None,
        sample_rate: int = TTS_SAMPLE_RATE,
    ) -> None:
        self._clock = clock
        self._on_first_packet = on_first_packet
        self._on_eof = on_eof
        self._sample_rate = sample_rate
        self._pcm: queue.SimpleQueue[bytes | object] = queue.SimpleQueue()
        self._packets: queue.SimpleQueue[bytes | object] = queue.SimpleQueue()
        self._odd_byte = b""
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

        args = ffmpeg_args(executable, sample_rate=sample_rate)[1:]
        # Our own pipe rather than stdin=PIPE: FFmpegAudio would then start its own writer thread
        # reading a file-like source, which we cannot wake or stop cleanly on barge-in.
        read_fd, self._write_fd = os.pipe()
        try:
            super().__init__("pipe:", executable=executable, args=args, stdin=read_fd)
        except BaseException:
            os.close(self._write_fd)
            raise
        finally:
            os.close(read_fd)
        self._popen = self._process
        pid = self._popen.pid
        self._writer = threading.Thread(target=self._write_loop, name=f"opus-pcm-writer:{pid}", daemon=True)
        self._pump = threading.Thread(target=self._pump_loop, name=f"opus-packet-pump:{pid}", daemon=True)
        self._writer.start()
        self._pump.start()

    @property
    def process(self) -> Any:
        """The FFmpeg ``Popen``, kept after clean-up so callers can check it has exited."""
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

    def feed(self, pcm: bytes) -> None:
        """Queue s16le mono PCM; returns at once. Chunks may split samples."""
        if self._finished or self._closed:
            return
        data = self._odd_byte + pcm
        cut = len(data) - len(data) % SAMPLE_WIDTH
        # Whole samples only, so a padding block can never land between a sample's two bytes.
        self._odd_byte = data[cut:]
        if cut:
            self._pcm.put(data[:cut])

    def finish(self) -> None:
        """No more audio: FFmpeg encodes what it has, flushes and exits."""
        if not self._finished:
            self._finished = True
            self._pcm.put(_CLOSE)

    def stop_reading(self) -> float:
        """Make ``read`` end playback from now on; returns the seconds played until now."""
        self._closed = True
        return self.played_seconds

    def read(self) -> bytes:
        if self._closed:
            return b""
        try:
            packet = self._packets.get(timeout=UNDERRUN_WAIT)
        except queue.Empty:
            self._request_padding()
            return OPUS_SILENCE
        if packet is _END:
            self._packets.put(_END)  # later reads see the end too
            self._check_process_returncode()  # a crash becomes the player's error, not an exception
            return b""
        assert isinstance(packet, bytes)
        self._packets_read += 1
        if self.first_packet_read_at is None:
            self.first_packet_read_at = self._clock()
        return packet

    def _request_padding(self) -> None:
        if self._pad_armed and not self._finished:
            self._pad_armed = False
            self._pcm.put(_PAD)

    def _write_loop(self) -> None:
        written = 0  # samples
        try:
            while True:
                if self._pad_armed and self.first_packet_ready_at is None and not self._finished:
                    try:
                        item = self._pcm.get(timeout=FIRST_AUDIO_FLUSH_SECONDS)
                    except queue.Empty:
                        item = _PAD
                        self._pad_armed = False
                else:
                    item = self._pcm.get()
                if item is _CLOSE:
                    return
                if item is _PAD:
                    pad = DEMUX_BLOCK_SAMPLES - written % DEMUX_BLOCK_SAMPLES
                    if pad < ENCODER_DELAY_SAMPLES:
                        pad += DEMUX_BLOCK_SAMPLES
                    self._write(bytes(pad * SAMPLE_WIDTH))
                    self._pads.append((written / self._sample_rate, pad / self._sample_rate))
                    self._padded_samples += pad
                    written += pad
                    continue
                assert isinstance(item, bytes)
                self._write(item)
                written += len(item) // SAMPLE_WIDTH
                self._pad_armed = True
                if self.first_pcm_written_at is None:
                    self.first_pcm_written_at = self._clock()
        except OSError:
            # EPIPE: FFmpeg exited or was killed; the pump reports the end to the reader.
            log.debug("FFmpeg stdin closed early", exc_info=True)
        finally:
            os.close(self._write_fd)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._write_fd, view) :]

    def _pump_loop(self) -> None:
        try:
            for packet in OggStream(self._stdout).iter_packets():
                if packet.startswith((b"OpusHead", b"OpusTags")):
                    continue  # Ogg Opus headers, not audio
                self._packets.put(packet)
                if self.first_packet_ready_at is None:
                    self.first_packet_ready_at = self._clock()
                    self._notify(self._on_first_packet, self.first_packet_ready_at)
        except (OggError, OSError, ValueError):
            # A killed FFmpeg leaves a truncated page (OggError) or a closed pipe.
            log.debug("FFmpeg output ended mid-stream", exc_info=True)
        finally:
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
        """Stop FFmpeg and both threads; idempotent, safe from any thread, leaves no process."""
        with self._cleanup_lock:
            if self._cleaned or not hasattr(self, "_popen"):
                return
            self._cleaned = True
            self._closed = True
            self._stopped = True  # tells FFmpegAudio the exit below is not a failure
            self._finished = True
            while True:  # drop queued audio so the writer reaches the close marker at once
                try:
                    self._pcm.get_nowait()
                except queue.Empty:
                    break
            self._pcm.put(_CLOSE)
            if self._popen.poll() is None:
                self._popen.kill()
            self._popen.wait()
            for thread in (self._writer, self._pump):
                if thread is not threading.current_thread():
                    thread.join(JOIN_TIMEOUT)
            if not self._pump.is_alive():
                self._stdout.close()


class VoiceOutput(Protocol):
    """The part of ``discord.VoiceClient`` playback uses."""

    def play(
        self, source: discord.AudioSource, *, after: Callable[[Exception | None], Any] | None = None
    ) -> None: ...
    def stop(self) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...


@dataclass(slots=True, eq=False)
class _Reply:
    source: StreamingOpusSource
    done: asyncio.Event
    started: bool = False


class SpeechPlayer:
    """Plays one reply at a time into a guild's voice connection. One per guild; loop thread only."""

    def __init__(
        self,
        voice_client: VoiceOutput,
        *,
        ffmpeg_executable: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._voice = voice_client
        self._executable = ffmpeg_executable
        self._clock = clock
        self._reply: _Reply | None = None
        self._last_played = 0.0
        self._last_first_packet_at: float | None = None

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

    def begin_reply(self) -> None:
        """Spawn FFmpeg for a new reply. A reply still playing is interrupted: the new one wins."""
        if self._reply is not None:
            self.interrupt()
        loop = asyncio.get_running_loop()
        reply: _Reply | None = None

        # Called from the pump thread; `reply` is read when the loop runs them, after it is set.
        def on_first_packet(_at: float) -> None:
            _call_soon(loop, lambda: reply and self._start_playing(reply))

        def on_eof() -> None:
            _call_soon(loop, lambda: reply and self._on_eof(reply))

        source = StreamingOpusSource(
            executable=self._executable, clock=self._clock, on_first_packet=on_first_packet, on_eof=on_eof
        )
        reply = _Reply(source=source, done=asyncio.Event())
        self._reply = reply

    def feed(self, pcm: bytes) -> None:
        """Queue 24 kHz s16le mono PCM. Ignored when no reply is active (e.g. after barge-in)."""
        if self._reply is not None:
            self._reply.source.feed(pcm)

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
        onset). discord.py's player stops reading packets; FFmpeg keeps encoding meanwhile."""
        if self._reply is not None and self._reply.started:
            self._voice.pause()

    def resume(self) -> None:
        """The onset was not speech after all: carry on from the packet after the last one sent."""
        if self._reply is not None and self._reply.started:
            self._voice.resume()

    def interrupt(self) -> float:
        """Barge-in: stop now, drop queued audio, kill FFmpeg. Returns seconds actually played."""
        reply, self._reply = self._reply, None
        if reply is None:
            return 0.0
        played = reply.source.stop_reading()
        if reply.started:
            self._voice.stop()
        self._end(reply)
        self._last_played = played
        return played

    def close(self) -> None:
        """Leaving the channel: stop whatever is playing and release FFmpeg."""
        self.interrupt()

    def _start_playing(self, reply: _Reply) -> None:
        if reply is not self._reply or reply.started:
            return  # interrupted before its first packet was ready
        loop = asyncio.get_running_loop()
        reply.started = True
        try:
            self._voice.play(reply.source, after=lambda error: _call_soon(loop, self._on_played, reply, error))
        except discord.ClientException as error:  # not connected, or something else is playing
            log.warning("Cannot play reply: %s", error)
            self._finish_reply(reply)

    def _on_eof(self, reply: _Reply) -> None:
        if not reply.started:  # FFmpeg ended without a single packet: nothing will call `after`
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
        self._end(reply)

    @staticmethod
    def _end(reply: _Reply) -> None:
        # The player thread also cleans up after `after`; waiting for the process here means a
        # finished `wait_done` never leaves an FFmpeg behind.
        reply.source.cleanup()
        reply.done.set()


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:
        log.debug("Event loop closed; dropping playback callback")
