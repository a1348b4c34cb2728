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
import os
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


def lower_priority(pid: int, niceness: int) -> None:
    """Run process ``pid`` ``niceness`` steps below this process's CPU priority (capped at 19).

    Under a full CPU the scheduler then gives the bot's threads (its event loop above all) the
    core first, and the encoders the rest. Refused or unsupported (no ``setpriority``), the process
    keeps our priority: logged, never raised, since the reply plays either way."""
    if niceness <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        target = min(19, os.getpriority(os.PRIO_PROCESS, 0) + niceness)
        os.setpriority(os.PRIO_PROCESS, pid, target)
    except OSError as error:  # the process already exited, or a sandbox forbids it
        log.debug("Could not lower FFmpeg's priority (pid %s): %s", pid, error)
