"""Whose audio is an SSRC that nobody announced? With DAVE on, the audio itself says.

Discord tells us SSRC → user with SPEAKING (op 5), which a client sends when it starts talking.
A bot that (re)connects while a member is already talking may never get one for that talk spurt:
after a voice server change every client has a new SSRC, and the member's SPEAKING went out
before we were there (Discord does not resend it after a rejoin). Without a mapping the audio is
dropped as unknown until the member pauses. But a DAVE frame authenticates only under its
sender's media key, so trying the group's members in turn identifies the sender for certain: a
wrong guess fails AEAD authentication, so no garbage can be attributed or decoded. Plain calls
(protocol 0) carry no such proof and still wait for SPEAKING.

Cost: for an unmapped SSRC only, one transport decrypt and at most one davey decrypt per member,
on one packet per arriving packet; each orphan packet is tried once, and an SSRC is given up after
``IDENTIFY_TRIES`` packets that nobody's key opens.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Final

import davey

from bot.voice.dave import looks_encrypted
from bot.voice.transport import TransportDecryptor, TransportError

# Orphan packets before asking: SPEAKING normally beats the first packet or follows within a few.
IDENTIFY_AFTER: Final = 3
IDENTIFY_TRIES: Final = 50  # 1 s of a forged or foreign stream, then it costs nothing more
_MAX_TRACKED: Final = 64
_SCAN: Final = 8  # orphans opened per call at most (160 ms), so silence-only orphans cost little
_AUDIO: Final = davey.MediaType.audio


class SsrcIdentifier:
    """Tries orphan packets of one SSRC against the DAVE group's members (reader thread only)."""

    def __init__(self) -> None:
        self._tries: dict[int, int] = {}

    def identify(
        self, ssrc: int, orphans: deque[bytes], session: Any, transport: TransportDecryptor | None
    ) -> tuple[int, int, bytes] | None:
        """``(index in orphans, user id, Opus)`` once a member's key opens the oldest encrypted
        orphan. That packet's nonce is now used up in davey, so the caller must take this Opus
        for it rather than decrypt it again. Orphans nobody can open are removed."""
        if session is None or not session.ready or transport is None or len(orphans) < IDENTIFY_AFTER:
            return None
        tries = self._tries.get(ssrc, 0)
        if tries >= IDENTIFY_TRIES:
            return None
        for index, packet in enumerate(orphans):
            if index >= _SCAN:
                return None
            try:
                payload = transport.decrypt(packet)
            except TransportError:
                del orphans[index]
                return None
            if not looks_encrypted(payload):
                continue  # the silence frame (or a plain one): anyone's, and harmless to replay
            if len(self._tries) >= _MAX_TRACKED:
                self._tries.clear()
            self._tries[ssrc] = tries + 1
            own = session.user_id
            for member in session.get_user_ids():
                user_id = int(member)
                if user_id == own:
                    continue
                try:
                    opus = bytes(session.decrypt(user_id, _AUDIO, payload))
                except Exception:  # noqa: S112  # davey raises ValueError: a wrong guess, expected
                    continue
                self._tries.pop(ssrc, None)
                return index, user_id, opus
            del orphans[index]
            return None
        return None
