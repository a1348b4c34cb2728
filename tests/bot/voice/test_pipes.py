"""The pipe hub (one thread for every FFmpeg's pipes) and the push NUT parser it feeds."""

from __future__ import annotations

import io
import os
import random
import subprocess
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from bot.audio.ffmpeg import ffmpeg_args, ffmpeg_executable, wav_stream_header
from bot.voice.nut import NutParser, NutReader
from bot.voice.pipes import PipeHub, PipeWriter


def wait_for(predicate: Callable[[], bool], guard: float = 10.0) -> None:
    deadline = time.monotonic() + guard
    while not predicate():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.002)


def read_all(fd: int, into: bytearray) -> None:
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        while chunk := pipe.read(65536):
            into += chunk


def test_writes_beyond_the_pipe_never_block_and_arrive_whole_and_in_order_then_eof() -> None:
    hub = PipeHub()
    read_fd, write_fd = os.pipe()
    writer = PipeWriter(write_fd, hub)
    data = np.random.default_rng(3).integers(0, 256, 1_000_000, dtype=np.uint8).tobytes()
    for i in range(0, len(data), 6000):  # nobody reads yet: a blocking write would hang here
        writer.write(data[i : i + 6000])
    assert writer.pending > 0  # the pipe (64 KB) took what it could; the rest waits for the hub
    writer.close()  # after what is pending
    assert not writer.closed
    received = bytearray()
    reader = threading.Thread(target=read_all, args=(read_fd, received))
    reader.start()
    reader.join(10)
    assert not reader.is_alive()  # EOF came: the hub closed the pipe once all was written
    assert bytes(received) == data and writer.closed


def test_abort_drops_what_is_pending_and_a_vanished_reader_is_not_an_error() -> None:
    hub = PipeHub()
    read_fd, write_fd = os.pipe()
    writer = PipeWriter(write_fd, hub)
    writer.write(bytes(200_000))
    writer.abort()
    wait_for(lambda: writer.closed)  # the hub closes it
    assert writer.pending == 0
    os.close(read_fd)
    read_fd, write_fd = os.pipe()
    gone = PipeWriter(write_fd, hub)
    os.close(read_fd)  # FFmpeg killed
    gone.write(b"late audio")  # EPIPE: dropped, the pipe closed
    wait_for(lambda: gone.closed)
    gone.write(b"more")  # and nothing after
    assert gone.pending == 0


def test_watch_read_calls_until_told_to_stop_then_closes_the_file() -> None:
    hub = PipeHub()
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    file = os.fdopen(read_fd, "rb", buffering=0)
    got = bytearray()
    threads: set[str] = set()

    def on_readable() -> bool:
        threads.add(threading.current_thread().name)
        chunk = os.read(read_fd, 4096)
        got.extend(chunk)
        return bool(chunk)

    hub.watch_read(file, on_readable)
    os.write(write_fd, b"abc")
    wait_for(lambda: bytes(got) == b"abc")
    os.close(write_fd)
    wait_for(lambda: file.closed)
    assert threads == {"ffmpeg-pipes"}


def test_the_push_parser_yields_the_reader_s_packets_however_the_bytes_are_cut() -> None:
    pcm = (0.3 * np.sin(2 * np.pi * 440 * np.arange(24_000) / 24_000)).astype("<f4").tobytes()
    nut = subprocess.run(ffmpeg_args(ffmpeg_executable()), input=wav_stream_header() + pcm,
                         stdout=subprocess.PIPE, check=True, timeout=60).stdout
    expected = list(NutReader(io.BytesIO(nut).read).iter_packets())
    assert len(expected) >= 45
    rng = random.Random(5)
    for cuts in ([1] * len(nut), [rng.randint(1, 300) for _ in range(len(nut))]):
        parser, packets, pos = NutParser(), [], 0
        for size in cuts:
            if pos >= len(nut):
                break
            packets += parser.feed(nut[pos : pos + size])
            pos += size
        assert packets == expected and parser.leftover == 0
    truncated = NutParser()
    truncated.feed(nut[:-3])
    assert truncated.leftover > 0  # a killed FFmpeg's last packet: reported, not a packet


def test_writes_queue_without_a_syscall_while_the_hub_is_busy_and_convert_on_its_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub = PipeHub()
    busy, release = threading.Event(), threading.Event()
    hub.call(lambda: (busy.set(), release.wait(10)))
    assert busy.wait(10)
    syscalls: list[int] = []
    real_write = os.write

    def recording_write(fd: int, data: bytes) -> int:
        if threading.current_thread() is threading.main_thread():
            syscalls.append(fd)
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", recording_write)
    read_fd, write_fd = os.pipe()
    writer = PipeWriter(write_fd, hub)
    threads: set[str] = set()

    def doubled(data: bytes) -> bytes:
        threads.add(threading.current_thread().name)
        return data * 2

    for i in range(100):
        writer.write(bytes([i]), doubled if i % 2 else None)
    assert syscalls == []  # not even a wake-up: the busy hub sees the queue before it sleeps
    release.set()
    writer.close()
    received = bytearray()
    read_all(read_fd, received)
    assert bytes(received) == b"".join(bytes([i]) * (2 if i % 2 else 1) for i in range(100))
    assert threads == {"ffmpeg-pipes"}
