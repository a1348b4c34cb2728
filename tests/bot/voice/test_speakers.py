"""The speaker table on its own: SPEAKING map, orphan packets, consent, what leaves the table."""

from __future__ import annotations

from bot.voice.speakers import ORPHAN_PACKETS, ORPHAN_SSRCS, Speakers
from bot.voice.stats import ReceiveStats

OWN = 1


class NullDecoder:
    closed = False

    def decode(self, packet: bytes) -> bytes:
        return b""

    def conceal(self, next_packet: bytes | None = None) -> bytes:
        return b""

    def close(self) -> None:
        self.closed = True


class NullResampler:
    def process(self, pcm: bytes) -> bytes:
        return pcm

    def flush(self) -> bytes:
        return b""


def table() -> tuple[Speakers, ReceiveStats]:
    stats = ReceiveStats()
    return Speakers(stats, decoder_factory=NullDecoder, resampler_factory=NullResampler, jitter_depth=3), stats


def test_packets_before_speaking_are_kept_briefly_and_handed_back_in_order() -> None:
    speakers, stats = table()
    for n in range(ORPHAN_PACKETS + 5):
        assert speakers.open(10, bytes([n]), OWN) is None
    for ssrc in range(100, 100 + ORPHAN_SSRCS + 3):  # a flood of SSRCs: only a few are kept
        speakers.open(ssrc, b"x", OWN)
    assert len(speakers.orphans) == ORPHAN_SSRCS
    assert stats.unknown_ssrc == ORPHAN_PACKETS + 5 + ORPHAN_SSRCS + 3

    assert speakers.map(10, 222) == []
    opened = speakers.open(10, b"now", OWN)
    assert opened is not None
    speaker, early = opened
    assert speaker.user_id == 222 and speakers.active[10] is speaker
    assert list(early or ()) == [bytes([n]) for n in range(5, ORPHAN_PACKETS + 5)]  # the newest 25


def test_own_and_refused_ssrcs_never_open_and_refusals_are_counted_per_user() -> None:
    speakers, stats = table()
    assert speakers.open(OWN, b"x", OWN) is None and stats.own_ssrc == 1
    speakers.admit = lambda user_id: user_id != 333
    speakers.map(20, 333)
    speakers.open(20, b"a", OWN)
    speakers.open(20, b"b", OWN)
    assert speakers.refused_packets == {333: 2} and 20 not in speakers.active


def test_a_new_ssrc_for_a_user_hands_the_old_speaker_back_and_forget_ends_them() -> None:
    speakers, _ = table()
    speakers.map(30, 444)
    first = speakers.open(30, b"a", OWN)
    assert first is not None
    ended = speakers.map(31, 444)  # the user's client reconnected with a new SSRC
    assert ended == [first[0]] and speakers.users == {31: 444}
    speakers.open(31, b"b", OWN)
    ended, had = speakers.forget(444)
    assert had and [s.ssrc for s in ended] == [31] and not speakers.users and not speakers.active


def test_readmission_returns_the_speakers_now_refused() -> None:
    speakers, _ = table()
    allowed = {555, 666}
    speakers.admit = lambda user_id: user_id in allowed
    for ssrc, user in ((40, 555), (41, 666)):
        speakers.map(ssrc, user)
        speakers.open(ssrc, b"a", OWN)
    allowed.discard(666)
    dropped = speakers.refuse_now_refused()
    assert [s.user_id for s in dropped] == [666]
    assert speakers.refused == {41: 666} and set(speakers.active) == {40}
