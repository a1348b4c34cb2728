"""ReceiveHub: one thread reading many UDP sockets for SharedSocketReader (discord.py's
SocketReader interface). Through VoxcordConnectionState in test_connection_state.py."""

import asyncio
import socket
import threading
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from bot.voice.reader import ReceiveHub, SharedSocketReader

GUARD_S = 10.0  # only a hang guard; nothing asserts on timing


async def settled(hub: ReceiveHub) -> None:
    """Everything asked of the hub so far has run, and a whole pass (select, read every ready
    socket, commands) began after this call: commands run in order at the end of a pass, so the
    second one runs at the end of a pass that selected after the first had run."""
    for _ in range(2):
        done = threading.Event()
        hub.call(done.set)
        assert await asyncio.to_thread(done.wait, GUARD_S)


def bound_udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def sender() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    yield sock
    sock.close()


async def test_a_reader_follows_socket_reader_s_states(sender: socket.socket) -> None:
    hub = ReceiveHub()
    state = SimpleNamespace(socket=bound_udp())
    reader = SharedSocketReader(state, hub)
    heard: list[bytes] = []
    try:
        reader.start()  # started paused: discord.py resumes it once a socket exists
        reader.register(heard.append)  # explicitly paused: registering does not resume
        await settled(hub)
        assert hub.watching == 0
        reader.resume()
        await settled(hub)
        assert hub.watching == 1
        reader.unregister(heard.append)  # the last listener gone: idle
        await settled(hub)
        assert hub.watching == 0
        reader.register(heard.append)  # idle: the first listener resumes
        sender.sendto(b"one", state.socket.getsockname())
        await settled(hub)
        assert heard == [b"one"]
        reader.stop()
        await settled(hub)
        assert hub.watching == 0 and not reader.is_alive() and reader.listeners == ()
    finally:
        state.socket.close()


async def test_a_wake_up_reads_every_ready_socket_until_it_would_block(sender: socket.socket) -> None:
    hub = ReceiveHub()
    states = [SimpleNamespace(socket=bound_udp()) for _ in range(3)]
    heard: list[list[bytes]] = [[] for _ in states]
    blocked = threading.Event()
    release = threading.Event()

    def block(_data: bytes) -> None:  # holds the hub's thread while the others' packets queue up
        blocked.set()
        release.wait(GUARD_S)

    try:
        gate = SimpleNamespace(socket=bound_udp())
        gate_reader = SharedSocketReader(gate, hub, start_paused=False)
        gate_reader.start()
        gate_reader.register(block)
        readers = [SharedSocketReader(s, hub, start_paused=False) for s in states]
        for reader, got in zip(readers, heard, strict=True):
            reader.start()
            reader.register(got.append)
        await settled(hub)
        sender.sendto(b"gate", gate.socket.getsockname())
        assert await asyncio.to_thread(blocked.wait, GUARD_S)
        for n in range(5):
            for s in states:
                sender.sendto(b"%d" % n, s.socket.getsockname())
        release.set()
        await settled(hub)  # one pass after the gate's: it read every datagram queued meanwhile
        assert heard == [[b"%d" % n for n in range(5)]] * 3
    finally:
        for s in [*states, gate]:
            s.socket.close()


async def test_a_socket_closed_while_watched_does_not_block_its_fd_number(sender: socket.socket) -> None:
    # Closing a socket drops it from epoll but not from the selector's map; a new socket that
    # gets the same fd number (another guild's) must still be watched.
    hub = ReceiveHub()
    first = SimpleNamespace(socket=bound_udp())
    first_reader = SharedSocketReader(first, hub, start_paused=False)
    first_reader.start()
    first_reader.register(lambda _data: None)
    await settled(hub)
    old_fd = first.socket.fileno()
    first.socket.close()  # no pause first

    second = SimpleNamespace(socket=bound_udp())
    heard: list[bytes] = []
    try:
        assert second.socket.fileno() == old_fd
        second_reader = SharedSocketReader(second, hub, start_paused=False)
        second_reader.start()
        second_reader.register(heard.append)
        sender.sendto(b"second", second.socket.getsockname())
        await settled(hub)
        assert heard == [b"second"]
        assert hub.alive
    finally:
        second.socket.close()
