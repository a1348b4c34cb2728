"""The start-up heap is frozen while the bot runs and released when it stops (bot/heap.py)."""

from __future__ import annotations

import gc
import weakref

from bot.heap import frozen_startup_heap


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_what_is_alive_at_start_skips_collections_and_is_collectable_again_after() -> None:
    survivor = _Cycle()
    gone = weakref.ref(survivor)
    with frozen_startup_heap():
        assert gc.get_freeze_count() > 0
        del survivor
        gc.collect()
        assert gone() is not None  # frozen: a full collection does not even look at it
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert gone() is None


def test_garbage_made_while_frozen_is_still_collected() -> None:
    with frozen_startup_heap():
        later = _Cycle()
        gone = weakref.ref(later)
        del later
        gc.collect()
        assert gone() is None
