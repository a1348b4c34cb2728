"""One thread sends every guild's reply packets, each stream on its own 20 ms schedule.

discord.py plays each source on an ``AudioPlayer`` thread of its own that wakes every 20 ms. With
50 guilds answering at once that was 50 threads contending for the GIL with the event loop
(py-spy: GIL held 40-48 %, ~15,000 context switches/s; the loop's 10 ms timer ran 119 ms late at
p95). ``PacketSender`` does what ``AudioPlayer`` does for all of them from one thread: it calls
``VoiceClient.send_audio_packet(packet, encode=False)`` (which adds the RTP sequence and timestamp
and the DAVE and transport encryption), says SPEAKING when a stream starts or resumes and stops
saying it when it pauses or ends, sends discord.py's five Opus silence frames after speech (on
pause and at the end), and calls ``after(error)`` once a stream is over.

Each stream keeps its own phase, as its ``AudioPlayer`` did (``start + 20 ms * n``, reset by a
resume or a reconnect): packet n is never sent before it is due, at most ``COALESCE`` early so one
wake-up serves the streams whose packets fall due together. A stream's source is read without
blocking (``PacketSource.poll``): a packet not ready when due gets one more look ``UNDERRUN_WAIT``
later and is then replaced by silence, so an underrun never delays another guild and the
20 ms cadence holds (no bursts). Cleaning up a source is its owner's job (``SpeechPlayer`` does
it on the event loop): a shared thread must never wait for a process.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from discord import SpeakingState

from bot.audio.frames import FRAME_DURATION_S, OPUS_SILENCE
from bot.voice.opus_source import UNDERRUN_WAIT  # a packet not ready when due gets this long

log = logging.getLogger(__name__)

COALESCE = 0.002  # a packet due this soon goes out with the ones due now (one wake-up)
SILENCE_FRAMES = 5  # discord.py's ``AudioPlayer.send_silence``: tells receivers speech has ended
DEFAULT_TIMEOUT = 60.0  # how long a stream waits for a lost connection (VoiceClient.timeout)


class PacketSource(Protocol):
    """Where a stream's packets come from (``StreamingOpusSource``)."""

    def poll(self, *, last_chance: bool) -> bytes | None:
        """The next Opus packet, ``OPUS_SILENCE`` while the stream is dry, ``b""`` at the end;
        ``None``: not ready yet (only when ``last_chance`` is false). Must not block."""
        ...


class _Speaker(Protocol):
    async def speak(self, state: SpeakingState = ..., /) -> None: ...


class VoiceLink(Protocol):
    """The part of ``discord.VoiceClient`` the sender uses."""

    @property
    def ws(self) -> Any: ...  # DiscordVoiceWebSocket: ``speak(state)``
    def is_connected(self) -> bool: ...
    def send_audio_packet(self, data: bytes, *, encode: bool = True) -> None: ...


After = Callable[[Exception | None], Any]


class Playback:
    """One stream being sent: the handle its owner pauses, resumes and stops (any thread)."""

    __slots__ = ("_after", "_loop", "_sender", "_silence_sent", "_waited", "due",
                 "ended", "lost_since", "paused", "source", "stopping", "voice")

    def __init__(self, sender: PacketSender, voice: VoiceLink, source: PacketSource, after: After | None,
                 loop: asyncio.AbstractEventLoop | None) -> None:
        self._sender = sender
        self.voice = voice
        self.source = source
        self._after = after
        self._loop = loop
        self.due = 0.0  # clock time the next packet is due
        self.paused = False
        self.stopping = False
        self.ended = False
        self.lost_since: float | None = None  # the connection was lost, from then on
        self._waited = False  # the packet due now was not ready: looked again UNDERRUN_WAIT later
        self._silence_sent = True  # the silence frames that mark a pause

    def pause(self) -> None:
        """Stop sending after the packet in hand; the next packet waits for ``resume``."""
        with self._sender.lock:
            if self.ended or self.paused or self.stopping:
                return
            self.paused = True
            self._silence_sent = False
            self.due = self._sender.clock()  # the silence frames go out now
            self._sender.lock.notify()
        speak(self.voice, SpeakingState.none, self._loop)

    def resume(self) -> None:
        """Go on with the next packet now, on a schedule that starts now (as ``AudioPlayer``)."""
        with self._sender.lock:
            if self.ended or not self.paused or self.stopping:
                return
            self.paused = False
            self._waited = False
            self.due = self._sender.clock()
            self._sender.lock.notify()
        speak(self.voice, SpeakingState.voice, self._loop)

    def stop(self) -> None:
        """End the stream now: no more packets from its source, then ``after(None)``."""
        with self._sender.lock:
            if self.ended or self.stopping:
                return
            self.stopping = True
            self.due = -math.inf  # before the others: its silence precedes a new reply's first packet
            self._sender.lock.notify()

    def is_playing(self) -> bool:
        return not self.ended and not self.stopping and not self.paused


class PacketSender:
    """Sends the packets of every playing stream from one daemon thread, started on first use."""

    def __init__(self, *, frame: float = FRAME_DURATION_S, clock: Callable[[], float] = time.perf_counter,
                 underrun_wait: float = UNDERRUN_WAIT, threaded: bool = True) -> None:
        """``threaded=False``: no thread; the caller calls ``run_due`` (tests, on a fake clock)."""
        self.frame = frame
        self.clock = clock
        self.underrun_wait = underrun_wait
        self.lock = threading.Condition()  # an RLock underneath: ``after`` may stop or pause
        self._streams: list[Playback] = []
        self._threaded = threaded
        self._thread: threading.Thread | None = None

    def play(self, voice: VoiceLink, source: PacketSource, *, after: After | None = None,
             loop: asyncio.AbstractEventLoop | None = None) -> Playback:
        """Start sending ``source`` on ``voice`` now. ``after(error)`` runs on the sender thread
        once the stream is over (ended, stopped, failed, or its connection lost for good);
        ``loop`` runs the SPEAKING updates (the running loop when called from one)."""
        if loop is None:
            loop = _running_loop()
        playback = Playback(self, voice, source, after, loop)
        with self.lock:
            playback.due = self.clock()
            self._streams.append(playback)
            if self._threaded and self._thread is None:
                self._thread = threading.Thread(target=self._run, name="voice-packet-sender", daemon=True)
                self._thread.start()
            self.lock.notify()
        speak(voice, SpeakingState.voice, loop)
        return playback

    @property
    def streams(self) -> int:
        with self.lock:
            return len(self._streams)

    def run_due(self) -> float:
        """Send what is due now (or within ``COALESCE``); returns when the next packet is due."""
        with self.lock:
            now = self.clock()
            due = sorted((s for s in self._streams if s.due <= now + COALESCE), key=lambda s: s.due)
        for playback in due:
            self._tick(playback)
        with self.lock:
            return min((s.due for s in self._streams), default=math.inf)

    def _run(self) -> None:
        while True:
            self.run_due()
            with self.lock:  # the same hold as the wait: a play() or stop() cannot slip between
                wait = min((s.due for s in self._streams), default=math.inf) - self.clock()
                if wait > COALESCE:
                    self.lock.wait(None if wait == math.inf else wait)

    def _tick(self, s: Playback) -> None:
        """One due step of a stream. Under the lock: pause, resume and stop land between steps."""
        with self.lock:
            if s.ended:
                return
            try:
                if s.stopping:
                    self._end(s, None)
                elif s.paused:
                    if not s._silence_sent:
                        s._silence_sent = True
                        _send_silence(s.voice)
                    s.due = math.inf
                elif self._connected(s):
                    self._send_next(s)
            except Exception as error:  # a failed read or send ends that stream only
                self._end(s, error)

    def _connected(self, s: Playback) -> bool:
        """``AudioPlayer`` waits out a reconnect (up to ``VoiceClient.timeout``) without reading."""
        now = self.clock()
        if s.voice.is_connected():
            if s.lost_since is not None:
                s.lost_since = None
                s.due = now  # a schedule of its own from the reconnect, as AudioPlayer's
                speak(s.voice, SpeakingState.voice, s._loop)
            return True
        if s.lost_since is None:
            s.lost_since = now
        if now - s.lost_since > getattr(s.voice, "timeout", DEFAULT_TIMEOUT):
            log.debug("Voice connection lost for good; ending playback")
            self._end(s, None, connected=False)
        else:
            s.due = now + self.frame
        return False

    def _send_next(self, s: Playback) -> None:
        packet = s.source.poll(last_chance=s._waited)
        if packet is None:  # late: one more look before silence stands in for it
            s._waited = True
            s.due += self.underrun_wait
            return
        if not packet:
            self._end(s, getattr(s.source, "_current_error", None))  # FFmpegAudio's process failure
            return
        s.voice.send_audio_packet(packet, encode=False)
        if s._waited:
            s._waited = False
            s.due -= self.underrun_wait
        s.due += self.frame

    def _end(self, s: Playback, error: Exception | None, *, connected: bool = True) -> None:
        s.ended = True
        s.due = math.inf
        self._streams.remove(s)
        if connected and s.voice.is_connected():
            _send_silence(s.voice)
        speak(s.voice, SpeakingState.none, s._loop)
        if s._after is not None:
            try:
                s._after(error)
            except Exception:
                log.exception("Calling a playback's after callback failed")
        elif error is not None:
            log.error("Playback failed", exc_info=error)


def speak(voice: VoiceLink, state: SpeakingState, loop: asyncio.AbstractEventLoop | None) -> None:
    """Tell Discord we (no longer) speak, from any thread, as ``AudioPlayer._speak`` does."""
    if loop is None:
        return
    try:
        update = voice.ws.speak(state)
    except Exception:  # no websocket (disconnected)
        log.debug("SPEAKING update failed", exc_info=True)
        return
    try:
        asyncio.run_coroutine_threadsafe(update, loop)
    except RuntimeError:  # the loop is closed
        update.close()


def _send_silence(voice: VoiceLink) -> None:
    try:
        for _ in range(SILENCE_FRAMES):
            voice.send_audio_packet(OPUS_SILENCE, encode=False)
    except Exception:
        log.debug("Silence frames not sent", exc_info=True)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@functools.cache
def default_sender() -> PacketSender:
    """The process's sender: one thread for every guild's playback (the point of it)."""
    return PacketSender()
