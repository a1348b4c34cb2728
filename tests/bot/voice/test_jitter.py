import pytest

from bot.voice.jitter import ADMIT, DUPLICATE, IN_ORDER, LATE, RELEASED, JitterBuffer


def feed(jb: JitterBuffer, seqs, *, ts_of=lambda s: s * 960):
    """Push admitted packets; return what would be played: ('p', seq-payload) or ('c', fec)."""
    played = []
    for seq in seqs:
        if jb.admit(seq) != ADMIT:
            continue
        payload = b"p%d" % seq
        if jb.push(seq, ts_of(seq) & 0xFFFFFFFF, payload) == IN_ORDER:
            played.append((ts_of(seq) & 0xFFFFFFFF, payload))
        else:
            played.extend((ts, p if p is not None else ("conceal", f)) for ts, p, f in jb.ready)
    return played


def test_in_order_packets_take_the_fast_path():
    jb = JitterBuffer()
    results = [jb.push(s, s * 960, b"x") for s in range(10)]
    assert results == [IN_ORDER] * 10
    assert jb.held == 0


def test_reordered_packets_come_out_in_order_without_concealment():
    jb = JitterBuffer(depth=3)
    played = feed(jb, [0, 1, 3, 2, 4, 6, 5, 7])
    assert [p for _, p in played] == [b"p%d" % s for s in range(8)]
    assert jb.concealed == 0


def test_duplicates_are_refused_whether_held_or_already_played():
    jb = JitterBuffer(depth=3)
    feed(jb, [0, 1, 3])
    assert jb.admit(3) == DUPLICATE  # held
    assert jb.admit(1) == DUPLICATE  # already released
    assert jb.admit(2) == ADMIT
    assert jb.duplicates == 2


def test_a_packet_after_its_hole_was_concealed_is_late():
    jb = JitterBuffer(depth=2)
    played = feed(jb, [0, 2, 3, 1])  # 1 is given up when 3 arrives (two ahead of the hole)
    assert [p for _, p in played] == [b"p0", ("conceal", b"p2"), b"p2", b"p3"]
    assert jb.admit(1) == LATE
    assert jb.late == 2  # the feed's attempt and this one


def test_loss_is_concealed_so_the_timeline_is_complete():
    jb = JitterBuffer(depth=3)
    arrived = [s for s in range(40) if s not in (5, 6, 7, 20)]
    played = feed(jb, arrived)
    played.extend((ts, p if p is not None else ("conceal", f)) for ts, p, f in jb.flush())
    assert len(played) == 40
    assert [ts for ts, _ in played] == [s * 960 for s in range(40)]
    assert [p for _, p in played if isinstance(p, tuple)] == [
        ("conceal", None),
        ("conceal", None),
        ("conceal", b"p8"),
        ("conceal", b"p21"),
    ]
    assert jb.concealed == 4


def test_sequence_and_timestamp_wraparound():
    jb = JitterBuffer(depth=3)
    seqs = [(65530 + i) & 0xFFFF for i in range(12)]
    order = seqs[:4] + [seqs[5], seqs[4]] + seqs[6:8] + seqs[9:]  # swap across 65535→0, lose one
    base = 0xFFFFFFFF - 960 * 5 + 1

    def ts_of(seq):
        return base + ((seq - 65530) & 0xFFFF) * 960

    played = feed(jb, order, ts_of=ts_of)
    assert len(played) == 12
    assert [ts for ts, _ in played] == [ts_of(s) & 0xFFFFFFFF for s in seqs]
    assert played[8][1] == ("conceal", b"p%d" % seqs[9])
    assert jb.admit(65535) in (DUPLICATE, LATE)


def test_a_jump_beyond_the_window_resyncs_instead_of_concealing():
    jb = JitterBuffer(depth=3, window=16)
    feed(jb, [0, 1, 2])
    played = feed(jb, [500, 501])
    assert [p for _, p in played] == [b"p500", b"p501"]
    assert jb.resyncs == 1 and jb.concealed == 0


def test_a_restarted_sender_far_behind_resyncs():
    jb = JitterBuffer()
    feed(jb, [30000, 30001])
    assert jb.admit(10) == ADMIT
    assert jb.push(10, 0, b"x") == RELEASED
    assert jb.ready == [(0, b"x", None)] and jb.resyncs == 1


def test_flush_releases_held_packets_and_conceals_holes_between_them():
    jb = JitterBuffer(depth=4)
    feed(jb, [0, 2, 4])
    out = list(jb.flush())
    assert [(ts, p) for ts, p, _ in out] == [(960, None), (1920, b"p2"), (2880, None), (3840, b"p4")]
    assert jb.held == 0


@pytest.mark.parametrize(("depth", "window"), [(0, 16), (16, 16), (3, 12)])
def test_bad_parameters_are_refused(depth, window):
    with pytest.raises(ValueError):
        JitterBuffer(depth=depth, window=window)
