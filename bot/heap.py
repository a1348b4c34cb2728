"""The cyclic garbage collector and the start-up heap.

By the time the bot is assembled it holds a few hundred thousand objects that live as long as the
process: modules, classes, functions, the SDKs' pydantic models, the trust store. Every full
(generation 2) collection walks all of them to find a few thousand cycles of turn garbage, and
holds the GIL while it does: at 50 answering guilds one took 103 ms of the event loop, 35–38 ms
with the start-up heap frozen (docs/decisions.md, "The garbage collector"). Freezing moves what is
alive now into the collector's permanent generation, which collections skip; anything created
later is collected as before, and reference counting frees the frozen objects as usual.

No collection first: the end of ``assemble`` leaves a few hundred unreachable objects at most
(295 in a test process, which holds the tests' own garbage too), while a full collection there
costs ~70 ms, paid again by every test that assembles a bot.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Iterator

log = logging.getLogger(__name__)


@contextlib.contextmanager
def frozen_startup_heap() -> Iterator[None]:
    """Freeze what is alive for as long as the bot runs, unfreeze when it stops (so a test process
    that assembles many bots can still collect each one's cycles afterwards)."""
    gc.freeze()
    log.debug("Start-up heap frozen: %d objects skip every collection", gc.get_freeze_count())
    try:
        yield
    finally:
        gc.unfreeze()
