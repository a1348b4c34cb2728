"""One thread for every FFmpeg's pipes: ``PipeHub`` (a selector) and ``PipeWriter`` (a stdin).

Each reply's FFmpeg had two threads of its own, a writer blocked on its stdin and a pump blocked on
its stdout: at 50 answering guilds 100 threads, each waking for every packet and fighting the
event loop for the GIL (py-spy: 18 % of the bot's busy samples in them). Now stdin is written
without blocking by whoever has audio for it (the event loop feeding TTS chunks, the packet sender
asking for padding), and only what the pipe cannot take yet waits for the hub; stdout is read by
the hub when it is readable. The hub's selector belongs to its thread: others ask it to (un)watch
a pipe through ``call``, which wakes it.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import os
import selectors
import threading
from collections.abc import Callable
from typing import IO, Any

log = logging.getLogger(__name__)

READ_SIZE = 65_536


class PipeHub:
    """Watches pipes from one daemon thread (started on first use)."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._commands: collections.deque[Callable[[], None]] = collections.deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def call(self, command: Callable[[], None]) -> None:
        """Run ``command`` on the hub's thread, in the order called. Any thread."""
        self._commands.append(command)
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="ffmpeg-pipes", daemon=True)
                    self._thread.start()
        with contextlib.suppress(BlockingIOError):  # the wake pipe is full: the hub is awake already
            os.write(self._wake_w, b"\0")

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
            for key, _events in self._selector.select():
                if key.data is None:
                    self._drain_wake()
                    continue
                try:
                    key.data()
                except Exception:  # one pipe's failure must not stop every guild's playback
                    log.exception("FFmpeg pipe handler failed; no longer watching it")
                    self.unregister(key.fileobj)

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        while self._commands:
            command = self._commands.popleft()
            try:
                command()
            except Exception:
                log.exception("FFmpeg pipe command failed")


class PipeWriter:
    """A pipe written without blocking from any thread; the hub writes what did not fit yet."""

    def __init__(self, fd: int, hub: PipeHub) -> None:
        os.set_blocking(fd, False)
        self._fd = fd
        self._hub = hub
        self._lock = threading.Lock()
        self._pending = bytearray()
        self._watching = False  # registered with the hub, or about to be
        self._closing = False  # close once the pending bytes are written
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        return len(self._pending)

    def write(self, data: bytes) -> None:
        """Queue ``data`` after everything written before; returns at once. Dropped once closing,
        or when the reader is gone (EPIPE: FFmpeg exited or was killed)."""
        with self._lock:
            if self._closing or self._closed:
                return
            rest: bytes | None = data
            if not self._pending:
                rest = self._write_now(data)
            if rest:
                self._pending += rest
                self._watch()

    def close(self) -> None:
        """Close once what is pending is written (FFmpeg then sees the end of its input)."""
        with self._lock:
            self._closing = True
            if not self._pending and not self._closed:
                self._close_fd()

    def abort(self) -> None:
        """Drop what is pending and close now."""
        with self._lock:
            self._pending.clear()
            self._closing = True
            if not self._closed:
                self._close_fd()

    def _write_now(self, data: bytes) -> bytes | None:
        """What did not fit; None: the reader is gone (EPIPE), and the pipe is closed."""
        try:
            written = os.write(self._fd, data)
        except BlockingIOError:
            return data
        except OSError:
            log.debug("FFmpeg stdin closed early", exc_info=True)
            self._pending.clear()
            self._close_fd()
            return None
        return data[written:]

    def _watch(self) -> None:
        if not self._watching:
            self._watching = True
            self._hub.call(lambda: self._hub.register(self._fd, selectors.EVENT_WRITE, self._on_writable))

    def _on_writable(self) -> None:  # the hub's thread
        with self._lock:
            if self._closed:
                return  # its close is queued on the hub, after this
            rest = self._write_now(bytes(self._pending))
            if rest is None:
                return
            del self._pending[: len(self._pending) - len(rest)]
            if not self._pending:
                self._hub.unregister(self._fd)
                self._watching = False
                if self._closing:
                    self._close_fd()

    def _close_fd(self) -> None:
        self._closed = True
        if self._watching:  # the hub must forget the fd before it is closed (and reused)
            self._watching = False
            self._hub.call(functools.partial(self._unwatch_and_close, self._fd))
        else:
            os.close(self._fd)

    def _unwatch_and_close(self, fd: int) -> None:
        self._hub.unregister(fd)
        os.close(fd)


@functools.cache
def default_hub() -> PipeHub:
    """The process's hub: one thread for every reply's FFmpeg pipes."""
    return PipeHub()
