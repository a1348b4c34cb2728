"""Each member's rights over what the bot kept: export and erasure results."""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import UserFacingError


@dataclass(frozen=True, slots=True)
class Forgotten:
    turns: int
    choice_removed: bool
    heard_now: bool


class ExportTooLargeError(UserFacingError):
    pass
