"""Who may be heard: each guild's consent mode and members' choices, answered from memory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from bot.store.models import ConsentMode

OPT_OUT: Final = "opt_out"  # everyone heard unless they opt out (the default)
OPT_IN: Final = "opt_in"  # nobody heard until they opt in


def heard_by_default(consent_mode: ConsentMode) -> bool:
    return consent_mode != OPT_IN


class GuildAdmission:
    """May this member be heard? Called on the voice reader thread, so it only reads memory.

    Updates replace the dict instead of mutating it, so a reader never sees it half-changed.
    """

    __slots__ = ("_choices", "_default", "_listeners")

    def __init__(self, consent_mode: ConsentMode, choices: dict[int, bool]) -> None:
        self._default = consent_mode != OPT_IN
        self._choices = dict(choices)
        self._listeners: list[Callable[[], None]] = []

    def __call__(self, user_id: int) -> bool:
        return self._choices.get(user_id, self._default)

    @property
    def consent_mode(self) -> ConsentMode:
        return OPT_OUT if self._default else OPT_IN

    def subscribe(self, listener: Callable[[], None]) -> None:
        """``listener`` runs after every change (the receiver re-asks about each speaker)."""
        self._listeners.append(listener)

    def unsubscribe_all(self) -> None:
        self._listeners.clear()

    def update(self, *, consent_mode: ConsentMode | None = None, user_id: int | None = None,
               choice: bool | None = None, forget: bool = False) -> None:
        if consent_mode is not None:
            self._default = consent_mode != OPT_IN
        if user_id is not None:
            choices = dict(self._choices)
            if forget:
                choices.pop(user_id, None)
            elif choice is not None:
                choices[user_id] = choice
            self._choices = choices
        for listener in list(self._listeners):
            listener()


@dataclass(frozen=True, slots=True)
class ConsentStatus:
    heard: bool
    choice: bool | None  # the member's explicit choice, None if they never made one
    consent_mode: ConsentMode


