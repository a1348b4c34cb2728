"""One thread receives every guild's voice UDP: ``ReceiveHub`` (a selector) and ``SharedSocketReader``.

discord.py 2.7.1 gives each voice connection a ``SocketReader`` thread that waits in
``select([socket], timeout=30)`` and reads one datagram per wake-up: two GIL-releasing syscalls
per packet on a thread of its own. At 50 answering guilds those 50 threads cost ~45 ms CPU per
turn (per-thread /proc, session 8), and each wake-up took the GIL from the event loop, which then
waited to get it back (py-spy --gil: the loop's I/O cost far more at 50 guilds than alone).
Here one daemon thread waits on every connection's socket (epoll) and, per wake-up, reads each
ready socket until it would block, calling that connection's listeners with each datagram.

``SharedSocketReader`` stands in for ``SocketReader`` with its interface and state machine
(register / unregister / pause / resume / stop; idle while no listener is registered; started
paused until the first socket exists), so discord.py's ``VoiceConnectionState`` drives it
unchanged and IP discovery's listener is served like ours. A socket is watched only while its
reader runs: discord.py pauses the reader before it closes the socket (``disconnect``,
``soft_disconnect``), and ``_create_socket`` resumes it, which watches the new socket. The
selector belongs to the hub's thread: readers ask it to re-check what to watch through ``call``
(in order, so the old socket's unwatch always precedes the new one's watch, even when the fd
number is reused).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import selectors
import socket
from collections.abc import Callable
from typing import Any

from bot.voice.selector_thread import SelectorThread
from bot.voice.stats import RateLimitedLog

log = logging.getLogger(__name__)

MAX_DATAGRAM = 2048  # discord.py's SocketReader reads at most this much
# Datagrams read from one socket per wake-up before the next ready socket gets its turn (the rest
# are read on the next pass, at once: the selector is level-triggered). 32 is 640 ms of one
# speaker, far more than arrives between two wake-ups.
MAX_BATCH = 32

Listener = Callable[[bytes], Any]


class ReceiveHub(SelectorThread):
    """Reads every watched voice socket from one daemon thread (started on first use)."""

    def __init__(self, *, max_batch: int = MAX_BATCH) -> None:
        super().__init__("voice-receive")
        self._max_batch = max_batch
        self._watched: dict[SharedSocketReader, socket.socket] = {}  # the hub's thread only
        self._rlog = RateLimitedLog(log)

    @property
    def alive(self) -> bool:
        """The thread is running, or not needed yet."""
        return self._thread is None or self._thread.is_alive()

    @property
    def watching(self) -> int:
        """Sockets watched now (approximate from other threads)."""
        return len(self._watched)

    def sync(self, reader: SharedSocketReader) -> None:
        """Watch what ``reader`` wants watched now (its connection's socket, or nothing). Any thread."""
        self.call(functools.partial(self._sync, reader))

    # On the hub's thread only:
    def _sync(self, reader: SharedSocketReader) -> None:
        wanted = reader.wanted_socket()
        watched = self._watched.get(reader)
        if watched is wanted:
            return
        if watched is not None:
            self._unwatch(reader)
        if wanted is not None:
            self._watch(reader, wanted)

    def _watch(self, reader: SharedSocketReader, sock: socket.socket) -> None:
        try:
            self._selector.register(sock, selectors.EVENT_READ, reader)
        except ValueError:  # closed since the reader looked: the next sync has the new one
            return
        except KeyError:
            # The fd number is still mapped to a socket that was closed while watched (closing
            # drops it from epoll, not from the selector's map): forget that one first.
            stale = self._selector.get_key(sock)
            if not isinstance(stale.data, SharedSocketReader):
                raise
            self._unwatch(stale.data)
            self._selector.register(sock, selectors.EVENT_READ, reader)
        self._watched[reader] = sock

    def _unwatch(self, reader: SharedSocketReader) -> None:
        sock = self._watched.pop(reader, None)
        if sock is not None:
            with contextlib.suppress(KeyError, ValueError):  # found by identity even once closed
                self._selector.unregister(sock)

    def _run(self) -> None:
        while True:
            try:
                for key in self._select():
                    self._read(key.fileobj, key.data)  # type: ignore[arg-type]
                self._run_commands()
            except Exception:  # never let one bad pass stop every guild's hearing
                self._rlog(logging.ERROR, "hub", "Voice receive pass failed", exc_info=True)

    def _read(self, sock: socket.socket, reader: SharedSocketReader) -> None:
        recv = sock.recv
        for _ in range(self._max_batch):
            if not reader.running:  # paused meanwhile: what is left waits for resume, as SocketReader's
                return
            try:
                data = recv(MAX_DATAGRAM)
            except BlockingIOError:
                return
            except OSError:  # closed under us; discord.py's pause (and our unwatch) follows
                log.debug("Reading a voice socket failed; no longer watching it", exc_info=True)
                self._unwatch(reader)
                return
            for listener in reader.listeners:
                try:
                    listener(data)
                except Exception:  # one listener's bug must not stop the others, nor the thread
                    self._rlog(logging.ERROR, "listener", "Voice socket listener %r raised", listener,
                               exc_info=True)


class SharedSocketReader:
    """discord.py's ``SocketReader`` interface for one connection, read by a ``ReceiveHub``.

    Listeners run on the hub's thread, one datagram at a time, as they did on the reader thread."""

    def __init__(self, state: Any, hub: ReceiveHub, *, start_paused: bool = True) -> None:
        """``state``: the ``VoiceConnectionState``; its ``socket`` is read whenever it may have
        changed, as ``SocketReader`` reads it before every ``select``."""
        self.state = state
        self.start_paused = start_paused
        self._hub = hub
        self._callbacks: list[Listener] = []
        self.listeners: tuple[Listener, ...] = ()  # what the hub calls: replaced, never mutated
        self.running = False
        self._idle_paused = True  # paused because no listener is registered
        self._started = False
        self._ended = False

    def start(self) -> None:
        """``SocketReader.run``'s beginning: running, or explicitly paused when ``start_paused``."""
        self._started = True
        if self.start_paused:
            self.pause()
        else:
            self.running = True
            self._hub.sync(self)

    def register(self, callback: Listener) -> None:
        self._callbacks.append(callback)
        self.listeners = tuple(self._callbacks)
        if self._idle_paused:
            self._idle_paused = False
            self._set_running(True)

    def unregister(self, callback: Listener) -> None:
        try:
            self._callbacks.remove(callback)
        except ValueError:
            return
        self.listeners = tuple(self._callbacks)
        if not self._callbacks and self.running:
            self._idle_paused = True
            self._set_running(False)

    def pause(self) -> None:
        self._idle_paused = False
        self._set_running(False)

    def resume(self, *, force: bool = False) -> None:
        if self.running:
            # SocketReader re-reads the socket before each select: a swapped one is picked up.
            self._hub.sync(self)
            return
        if not force and not self._callbacks:
            self._idle_paused = True
            return
        self._idle_paused = False
        self._set_running(True)

    def stop(self) -> None:
        """For good: no more reading, listeners dropped (``SocketReader.run``'s ``finally``)."""
        self._ended = True
        self.running = False
        self._callbacks.clear()
        self.listeners = ()
        self._hub.sync(self)

    def is_alive(self) -> bool:
        """Started and not stopped, and the hub's thread is serving (it catches every error)."""
        return self._started and not self._ended and self._hub.alive

    def wanted_socket(self) -> socket.socket | None:
        """The socket to watch now: the connection's, while running (the hub's thread)."""
        if not self.running or not self._started or self._ended:
            return None
        sock: socket.socket | None = self.state.socket or None  # discord.py's MISSING is falsy
        if sock is None or sock.fileno() < 0:
            return None
        return sock

    def _set_running(self, running: bool) -> None:
        if self._ended:
            return
        changed = running != self.running
        self.running = running
        if changed and self._started:
            self._hub.sync(self)


@functools.cache
def default_receive_hub() -> ReceiveHub:
    """The process's hub: one thread for every guild's voice socket."""
    return ReceiveHub()
