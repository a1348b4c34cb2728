"""Errors a user can act on. The central handler turns these into short ephemeral replies."""

from __future__ import annotations


class UserFacingError(Exception):
    """An error whose message is safe and useful to show the member who caused it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotInVoiceError(UserFacingError):
    pass


class MissingVoicePermissionsError(UserFacingError):
    pass


class BusyElsewhereError(UserFacingError):
    """The bot is already in another voice channel of this guild; the reply offers to move."""

    def __init__(self, message: str, *, current_channel_id: int, requested_channel_id: int) -> None:
        super().__init__(message)
        self.current_channel_id = current_channel_id
        self.requested_channel_id = requested_channel_id


class NotConnectedError(UserFacingError):
    pass


class ClipRefusedError(UserFacingError):
    pass


class NoticeNotPostedError(UserFacingError):
    """The privacy notice could not be posted, so the bot will not listen."""
