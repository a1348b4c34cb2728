"""Each member's rights over what the bot kept: export and erasure results."""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import UserFacingError
from bot.services.privacy.captions import CaptionsErased


@dataclass(frozen=True, slots=True)
class Forgotten:
    turns: int
    choice_removed: bool
    heard_now: bool
    captions: CaptionsErased = CaptionsErased()  # caption messages changed (none when captions never ran)


class ExportTooLargeError(UserFacingError):
    pass
