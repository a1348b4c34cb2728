"""FFmpeg started off the event loop: one thread starts every reply's FFmpeg, in order.

Starting a process blocks its caller until the child has exec'd (``vfork``): 0.3 ms on an idle
machine, 2.2 ms per reply on the loop at 50 answering guilds (cProfile of bench/scaling.py:
``_posixsubprocess.fork_exec``, 101 calls, 0.22 s), where the child waits for a CPU. CPython
releases the GIL for that wait, so on this thread it costs the loop nothing. A reply's FFmpeg is
started when the reply begins, before its speech exists; its stdin pipe is made at once, so what
is fed meanwhile waits in the pipe, not in our code.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)

Spawn = Callable[[Callable[[], None]], None]
"""Runs a job that starts a process: later, on another thread (``in_background``), or at once."""


@functools.cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="ffmpeg-spawn")


def in_background(job: Callable[[], None]) -> None:
    """Run ``job`` on the process's spawn thread. The job handles its own errors."""
    try:
        _executor().submit(job)
    except RuntimeError:  # the interpreter is shutting down: no new threads, start it here
        log.debug("Spawn thread unavailable; starting FFmpeg on the caller's thread")
        job()


def at_once(job: Callable[[], None]) -> None:
    """Run ``job`` now, on the caller's thread (tests, benchmarks that time the spawn itself)."""
    job()
