"""One thread for every FFmpeg's pipes: ``PipeHub`` (a selector) and ``PipeWriter`` (a stdin).

Each reply's FFmpeg had two threads of its own, a writer blocked on its stdin and a pump blocked on
its stdout: at 50 answering guilds 100 threads, each waking for every packet and fighting the
event loop for the GIL (py-spy: 18 % of the bot's busy samples in them). Now whoever has audio
for a stdin (the event loop feeding TTS chunks, the packet sender asking for padding) queues it
without a syscall and the hub writes it as soon as the pipe takes it; stdout is read by the hub
when it is readable. The hub's selector belongs to its thread: others ask it to (un)watch
a pipe through ``call``, which wakes it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import selectors
import threading
from collections.abc import Callable
from typing import IO, Any

from bot.voice.selector_thread import SelectorThread

log = logging.getLogger(__name__)

READ_SIZE = 65_536


class PipeHub(SelectorThread):
    """Watches pipes from one daemon thread (started on first use)."""

    def __init__(self) -> None:
        super().__init__("ffmpeg-pipes")

    def watch_read(self, file: IO[bytes], on_readable: Callable[[], bool]) -> None:
        """``on_readable()`` whenever ``file`` is readable, until it returns False; then the hub
        stops watching and closes ``file``. Any thread."""
        self.call(lambda: self.register(file, selectors.EVENT_READ, lambda: self._read(file, on_readable)))

    # On the hub's thread only (from a command or a callback):
    def register(self, file: Any, events: int, callback: Callable[[], None]) -> None:
        self._selector.register(file, events, callback)

    def unregister(self, file: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):  # not (or no longer) watched
            self._selector.unregister(file)

    def _read(self, file: IO[bytes], on_readable: Callable[[], bool]) -> None:
        if not on_readable():
            self.unregister(file)
            file.close()

    def _run(self) -> None:
        while True:
            for key in self._select():
                try:
                    key.data()
                except Exception:  # one pipe's failure must not stop every guild's playback
                    log.exception("FFmpeg pipe handler failed; no longer watching it")
                    self.unregister(key.fileobj)
            self._run_commands()


class PipeWriter:
    """A pipe that any thread writes to without a syscall: ``write`` queues the bytes and the hub's
    thread writes them (it alone touches the fd, closing included), as soon as the pipe takes them.
    A write may carry a ``convert`` that the hub applies first, so that work leaves the caller too.

    At 50 guilds the event loop's own ``os.write`` of each TTS chunk cost 218 us a call (1.1 s of
    its 19 s): not the copy but the GIL, which the syscall lets go and the loop then waits for."""

    def __init__(self, fd: int, hub: PipeHub) -> None:
        os.set_blocking(fd, False)
        self._fd = fd
        self._hub = hub
        self._lock = threading.Lock()  # held only to move bytes and flags, never over a syscall
        # Written by callers, not yet taken by the hub: (bytes, what to convert them with).
        self._pending: list[tuple[bytes, Callable[[bytes], bytes] | None]] = []
        self._pending_bytes = 0
        self._scheduled = False  # a flush is queued on the hub
        self._closing = False  # close once everything queued is written
        self._aborted = False  # close now, dropping what is queued
        # The hub's thread only:
        self._unsent = bytearray()  # taken from ``_pending``; what the pipe has not accepted yet
        self._watching = False  # registered with the hub for writability
        self._closed = False

    @property
    def closed(self) -> bool:
        """The fd is closed (the hub closes it, shortly after ``close``/``abort`` or EPIPE)."""
        return self._closed

    @property
    def pending(self) -> int:
        """Bytes queued and not yet in the pipe (before conversion; approximate from other threads)."""
        return self._pending_bytes + len(self._unsent)

    def write(self, data: bytes, convert: Callable[[bytes], bytes] | None = None) -> None:
        """Queue ``data`` (to go in as ``convert(data)``) after everything written before; returns
        at once. Dropped once closing, or when the reader is gone (EPIPE: FFmpeg exited or was
        killed)."""
        with self._lock:
            if self._closing:
                return
            self._pending.append((data, convert))
            self._pending_bytes += len(data)
            self._schedule()

    def close(self) -> None:
        """Close once what is queued is written (FFmpeg then sees the end of its input)."""
        with self._lock:
            self._closing = True
            self._schedule()

    def abort(self) -> None:
        """Drop what is queued and close."""
        with self._lock:
            self._pending.clear()
            self._pending_bytes = 0
            self._closing = self._aborted = True
            self._schedule()

    def _schedule(self) -> None:  # under the lock
        if not self._scheduled:
            self._scheduled = True
            self._hub.call(self._flush)

    def _flush(self) -> None:  # the hub's thread: a queued flush, or the pipe became writable
        with self._lock:
            self._scheduled = False
            taken, self._pending, self._pending_bytes = self._pending, [], 0
            closing, aborted = self._closing, self._aborted
        if self._closed:
            return
        if aborted:
            self._unsent.clear()
            taken = []
        for data, convert in taken:
            self._unsent += convert(data) if convert is not None else data
        if self._unsent:
            try:
                del self._unsent[: os.write(self._fd, self._unsent)]
            except BlockingIOError:
                pass
            except OSError:
                log.debug("FFmpeg stdin closed early", exc_info=True)
                with self._lock:
                    self._closing = True
                    self._pending.clear()
                    self._pending_bytes = 0
                self._unsent.clear()
                self._close_fd()
                return
        if self._unsent:
            if not self._watching:
                self._watching = True
                self._hub.register(self._fd, selectors.EVENT_WRITE, self._flush)
            return
        if self._watching:
            self._watching = False
            self._hub.unregister(self._fd)
        if closing:
            self._close_fd()

    def _close_fd(self) -> None:  # the hub's thread
        if self._watching:
            self._watching = False
            self._hub.unregister(self._fd)  # before the fd is closed (and its number reused)
        self._closed = True
        os.close(self._fd)


@functools.cache
def default_hub() -> PipeHub:
    """The process's hub: one thread for every reply's FFmpeg pipes."""
    return PipeHub()
