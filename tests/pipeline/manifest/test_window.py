"""The requested range on an archive's timeline: the checks DASH and HLS share."""

from __future__ import annotations

import pytest

from pipeline.errors import RangeNotInArchive
from pipeline.manifest.request import Window, range_request
from pipeline.model import Gap


def test_wall_clock_places_the_window_when_both_sides_have_one():
    request = range_request(1_000_000, "00:00:05", 2000)
    assert request.window(990_000) == Window(10.0, 12.0, "wall")
    assert request.window(None) == Window(5.0, 7.0, "relative")
    assert request.window(990_000).field == "StartPos"
    assert request.window(None).field == "StartTime"


def test_a_window_ending_before_the_archive_names_the_field_and_the_start():
    with pytest.raises(RangeNotInArchive, match=r"before the archive starts at 3\.000s") as e:
        Window(0.0, 3.0, "relative").check_overlaps(3.0, 10.0, is_live=True, obj="m.mpd")
    assert e.value.field == "StartTime"


def test_slack_absorbs_float_noise_at_the_archive_start():
    Window(0.0, 3.0005, "wall").check_overlaps(3.0, 10.0, is_live=False, obj="m.mpd")
    with pytest.raises(RangeNotInArchive):
        Window(0.0, 3.0005, "wall").check_overlaps(
            3.0, 10.0, is_live=False, obj="m.mpd", slack=0.001
        )


def test_a_window_past_the_edge_is_refused_only_when_the_archive_is_finished():
    with pytest.raises(RangeNotInArchive, match=r"after the archive ends at 10\.000s") as e:
        Window(10.0, 12.0, "wall").check_overlaps(0.0, 10.0, is_live=False, obj="m.m3u8")
    assert e.value.field == "StartPos"
    Window(10.0, 12.0, "wall").check_overlaps(0.0, 10.0, is_live=True, obj="m.m3u8")


def test_the_part_before_the_archive_start_leads_the_gaps():
    inner = Gap(4.0, 5.0, "gap")
    assert Window(-2.0, 6.0, "wall").with_missing([inner], 1.0) == (
        Gap(-2.0, 1.0, "missing"),
        inner,
    )
    assert Window(2.0, 6.0, "wall").with_missing([inner], 1.0) == (inner,)
