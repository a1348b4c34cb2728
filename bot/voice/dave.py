"""The DAVE (end-to-end encryption) layer of the receive path, one frame at a time.

Policy, following libdave/davey semantics (https://daveprotocol.com) and discord.py's transition
handling in ``voice_state.py`` / ``gateway.py``:

- The Opus silence frame ``F8 FF FE`` is never DAVE-encrypted (daveprotocol.com "silence
  packets"); it passes untouched and without a call into davey.
- An encrypted frame (it ends with DAVE's ``0xFAFA`` magic marker) is only ever handed on after
  ``session.decrypt`` succeeded. If there is no ready session yet (joining, re-keying after
  ``reinit``), it is dropped as ``not_ready``: it must never reach the Opus decoder as audio.
- An unencrypted frame passes while there is no established group (protocol 0, or the upgrade
  window before our welcome/commit lands) and while the call is downgraded (protocol 0 with a
  session still around). Once a group is established for protocol > 0, davey decides: it allows
  unencrypted frames only inside the passthrough window discord.py opens around transitions and
  refuses them afterwards (``unencrypted``).
- davey's failures are counted by reason: ``user_not_in_group`` (no decryptor for that user yet),
  ``unencrypted``, ``no_valid_cryptor`` (wrong epoch/key, replayed nonce, tampering),
  ``decrypt_error`` (anything else), plus ``not_ready`` from the rule above.
"""

from __future__ import annotations

import logging
from typing import Any, Final, Protocol

import davey

from bot.voice.rtp import OPUS_SILENCE_FRAME
from bot.voice.stats import DaveStats, RateLimitedLog

_log = logging.getLogger(__name__)

NOT_READY: Final = "not_ready"
USER_NOT_IN_GROUP: Final = "user_not_in_group"
UNENCRYPTED: Final = "unencrypted"
NO_VALID_CRYPTOR: Final = "no_valid_cryptor"
DECRYPT_ERROR: Final = "decrypt_error"

# Expected while joining or during a transition; everything else deserves a warning.
# ``open`` with ``hold_unknown_keys``: the frame's key is not known yet, keep it and retry later.
HOLD: Final = b""
_QUIET_REASONS: Final = frozenset({NOT_READY, USER_NOT_IN_GROUP})
_AUDIO: Final = davey.MediaType.audio


class DaveSessionLike(Protocol):
    """The part of ``davey.DaveSession`` the receive path uses."""

    @property
    def ready(self) -> bool: ...

    def decrypt(self, user_id: int, media_type: Any, packet: bytes) -> bytes: ...

    def can_passthrough(self, user_id: int) -> bool: ...


class DaveConnection(Protocol):
    """Where the current session lives: discord.py's ``VoiceConnectionState`` satisfies this.

    Read on every frame because discord.py reinitialises or replaces the session on re-keys,
    reconnects and protocol transitions.
    """

    dave_session: Any
    dave_protocol_version: int


def failure_reason(exc: BaseException) -> str:
    """Map davey's error (a ``ValueError`` whose text names the Rust error) to a stats key."""
    text = str(exc)
    if "NoDecryptorForUser" in text:
        return USER_NOT_IN_GROUP
    if "UnencryptedWhenPassthroughDisabled" in text:
        return UNENCRYPTED
    if "NoValidCryptorFound" in text:
        return NO_VALID_CRYPTOR
    return DECRYPT_ERROR


def looks_encrypted(payload: bytes) -> bool:
    """DAVE frames end with a one-byte supplemental size and the ``FA FA`` magic marker."""
    return len(payload) > 2 and payload[-1] == 0xFA and payload[-2] == 0xFA


class DaveFrameDecryptor:
    """Turns a transport-decrypted RTP payload into an Opus packet, or ``None`` to drop it."""

    __slots__ = ("_connection", "_hold", "_log", "stats")

    def __init__(
        self, connection: DaveConnection, stats: DaveStats | None = None, *, log: RateLimitedLog | None = None,
        hold_unknown_keys: bool = False,
    ) -> None:
        """``hold_unknown_keys``: a frame davey has no cryptor for (a sender already on the epoch
        of a commit we have not processed yet) returns ``HOLD`` uncounted instead of failing; the
        caller retries it later and reports a final failure with ``count_failure``."""
        self._connection = connection
        self._hold = hold_unknown_keys
        self.stats = stats if stats is not None else DaveStats()
        self._log = log or RateLimitedLog(_log)

    def open(self, user_id: int, payload: bytes) -> bytes | None:
        if len(payload) == 3 and payload == OPUS_SILENCE_FRAME:
            self.stats.silence += 1
            return payload
        connection = self._connection
        session = connection.dave_session
        encrypted = len(payload) > 2 and payload[-1] == 0xFA and payload[-2] == 0xFA
        if session is None or not session.ready:
            if encrypted:
                self._fail(NOT_READY, user_id, None)
                return None
            if connection.dave_protocol_version:
                # An E2EE call whose group we have not joined yet (joining, reconnecting): members
                # encrypt, so a plain frame is forged or broken. davey would refuse it once ready
                # (its passthrough window is only opened by a transition); refuse it now too.
                self._fail(UNENCRYPTED, user_id, None)
                return None
            self.stats.passthrough += 1
            return payload
        if not encrypted and connection.dave_protocol_version == 0:
            self.stats.passthrough += 1
            return payload
        try:
            frame: bytes = session.decrypt(user_id, _AUDIO, payload)
        except Exception as exc:  # davey raises ValueError; anything else must not escape either
            reason = failure_reason(exc)
            if self._hold and reason == NO_VALID_CRYPTOR:
                return HOLD
            self._fail(reason, user_id, exc)
            return None
        if encrypted:
            self.stats.decrypted += 1
        else:
            self.stats.passthrough += 1
        return frame

    def count_failure(self, reason: str, user_id: int) -> None:
        """A held frame that never became decryptable."""
        self._fail(reason, user_id, None)

    def _fail(self, reason: str, user_id: int, exc: BaseException | None) -> None:
        failures = self.stats.failures
        failures[reason] = failures.get(reason, 0) + 1
        level = logging.DEBUG if reason in _QUIET_REASONS else logging.WARNING
        self._log(level, f"dave:{reason}", "DAVE frame from user %s dropped: %s (%s)", user_id, reason, exc)
