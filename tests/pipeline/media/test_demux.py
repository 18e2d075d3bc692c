"""Packet timestamps as containers store them: the keyframe-time repair and the run clock."""

from __future__ import annotations

from fractions import Fraction

from pipeline.media.clock import FixedClock, TrackClock
from pipeline.media.demux import RawTrack, repair_keyframe_pts
from pipeline.model import SegmentRef


def track(pts: list[int], keys: tuple[int, ...] = (0,)) -> RawTrack:
    """Packets in decode order with the given presentation times (dts: their order)."""
    return RawTrack(Fraction(1, 25), [(b"", p, i, 1, i in keys) for i, p in enumerate(pts)])


def test_a_keyframe_at_a_leading_pictures_time_gets_the_empty_slot() -> None:
    # I60 written at 58, the time of its leading B58: slot 60 is empty.
    t = track([58, 58, 59, 63, 61, 62, 64])
    repair_keyframe_pts(t)
    assert [p[1] for p in t.packets] == [60, 58, 59, 63, 61, 62, 64]


def test_distinct_times_are_left_alone() -> None:
    t = track([60, 58, 59, 63, 61, 62])
    repair_keyframe_pts(t)
    assert [p[1] for p in t.packets] == [60, 58, 59, 63, 61, 62]


def test_a_collision_without_a_single_empty_slot_is_left_alone() -> None:
    t = track([58, 58, 59, 64, 62, 63])  # 60 and 61 both empty: no way to tell
    repair_keyframe_pts(t)
    assert t.packets[0][1] == 58


def test_the_first_keyframe_in_decode_order_anchors_a_run() -> None:
    assert track([60, 58, 59, 63]).first_key() == 60
    assert track([60, 58, 59, 63]).anchor() == 58


def test_a_run_keeps_its_offset_until_a_discontinuity() -> None:
    clock = TrackClock()
    first = SegmentRef("a.ts", start=2.0, duration=2.0)
    assert clock.infers(first)
    assert clock.offset_for(first, 0.0, 10.0) == -10.0
    later = SegmentRef("b.ts", start=4.0, duration=2.0)
    assert not clock.infers(later)
    assert clock.offset_for(later, 4.0, 99.0) == -10.0
    cut = SegmentRef("c.ts", start=6.0, duration=2.0, discontinuity=True)
    assert clock.offset_for(cut, 6.0, 1.0) == 5.0


def test_a_fixed_clock_never_infers() -> None:
    clock = FixedClock(-10.0)
    ref = SegmentRef("a.ts", start=2.0, duration=2.0, discontinuity=True)
    assert not clock.infers(ref)
    assert clock.offset_for(ref, 2.0, 0.0) == -10.0
