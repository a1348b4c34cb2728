from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bot.store.engine import Transactions


class Repository:
    __slots__ = ("_clock", "_tx")

    def __init__(self, transactions: Transactions, *, clock: Callable[[], datetime]) -> None:
        self._tx = transactions
        # Injected so tests can pin "now" instead of sleeping past a timestamp.
        self._clock = clock
