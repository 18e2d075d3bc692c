"""The pieces under DASH resolution: ISO 8601 times, sidx, timeline arithmetic, templates."""

from __future__ import annotations

import struct

import pytest

from pipeline.errors import MediaError
from pipeline.manifest.dash_time import parse_datetime_ms, parse_duration
from pipeline.manifest.dash_timeline import Timeline, timeline_from_s
from pipeline.manifest.sidx import parse_sidx


def build_sidx(
    version: int, *, timescale: int, ept: int, first_offset: int, refs: list[tuple[int, int]]
) -> bytes:
    """A sidx box: refs are (referenced_size, subsegment_duration), all SAP-starting media."""
    body = struct.pack(">B3xII", version, 1, timescale)
    if version == 0:
        body += struct.pack(">II", ept, first_offset)
    else:
        body += struct.pack(">QQ", ept, first_offset)
    body += struct.pack(">HH", 0, len(refs))
    for size, duration in refs:
        body += struct.pack(">III", size, duration, 0x90000000)
    return struct.pack(">I4s", 8 + len(body), b"sidx") + body


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT2S", 2.0),
        ("PT0.5S", 0.5),
        ("PT1H2M3.5S", 3723.5),
        ("P1DT1S", 86401.0),
        ("PT24H", 86400.0),
        ("P0Y0M0DT0H10M0.000S", 600.0),
        ("-PT1S", -1.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text, obj="m", what="x") == seconds


@pytest.mark.parametrize("text", ["", "P", "PT", "2S", "PT2", "P1H", "PTS"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(MediaError, match="Period@start") as e:
        parse_duration(text, obj="m.mpd", what="Period@start")
    assert e.value.obj == "m.mpd"


def test_parse_datetime_ms() -> None:
    assert parse_datetime_ms("2019-07-04T15:20:00Z", obj="m", what="x") == 1_562_253_600_000
    assert parse_datetime_ms("2019-07-04T15:20:00.250Z", obj="m", what="x") == 1_562_253_600_250
    assert parse_datetime_ms("2019-07-04T17:20:00+02:00", obj="m", what="x") == 1_562_253_600_000
    assert parse_datetime_ms("2019-07-04T15:20:00", obj="m", what="x") == 1_562_253_600_000
    with pytest.raises(MediaError, match="MPD@availabilityStartTime"):
        parse_datetime_ms("soon", obj="m", what="MPD@availabilityStartTime")


@pytest.mark.parametrize("version", [0, 1])
def test_parse_sidx_offsets_are_absolute(version: int) -> None:
    box = build_sidx(
        version,
        timescale=1000,
        ept=2**33 if version else 7,
        first_offset=10,
        refs=[(100, 2000), (50, 1000)],
    )
    data = b"\0\0\0\x0cfree\0\0\0\0" + box  # another box before the sidx
    sidx = parse_sidx(data, 500, obj="v.mp4")
    anchor = 500 + len(data)
    assert sidx.timescale == 1000
    assert sidx.earliest_presentation_time == (2**33 if version else 7)
    assert [(r.offset, r.size, r.duration) for r in sidx.references] == [
        (anchor + 10, 100, 2000),
        (anchor + 110, 50, 1000),
    ]


def test_parse_sidx_errors() -> None:
    box = build_sidx(0, timescale=1000, ept=0, first_offset=0, refs=[(100, 2000)])
    with pytest.raises(MediaError, match="truncated"):
        parse_sidx(box[:-4], 0, obj="v.mp4")
    hier = box[:-12] + struct.pack(">III", 0x80000064, 2000, 0)
    with pytest.raises(MediaError, match="hierarchical"):
        parse_sidx(hier, 0, obj="v.mp4")
    with pytest.raises(MediaError, match="no sidx"):
        parse_sidx(b"\0\0\0\x08free", 0, obj="v.mp4")


def test_timeline_coalesces_contiguous_runs_and_locates_by_arithmetic() -> None:
    tl = Timeline([(0, 2, 1), (2, 2, 1), (4, 2, 3), (10, 1, 2), (20, 2, 2)], start_number=5)
    assert len(tl) == 9 and tl.runs == 3
    assert [tl.start(i) for i in range(len(tl))] == [0, 2, 4, 6, 8, 10, 11, 20, 22]
    assert tl.number(0) == 5 and tl.number(8) == 13
    assert tl.at_or_before(-1) == -1
    assert tl.at_or_before(5.5) == 2
    assert tl.at_or_before(15) == 6  # in the hole after 12: the last one before it
    assert tl.containing_or_after(15) == 7
    assert tl.containing_or_after(11.5) == 6
    assert tl.containing_or_after(99) == 9
    assert tl.before(20) == 6 and tl.before(20.5) == 7
    assert (tl.start_time, tl.end_time) == (0, 24)
    with pytest.raises(IndexError):
        tl.start(9)


def test_timeline_rejects_overlap_and_zero_duration() -> None:
    with pytest.raises(ValueError, match="goes back"):
        Timeline([(0, 2, 2), (2, 2, 1)])
    with pytest.raises(ValueError, match="not positive"):
        Timeline([(0, 0, 2)])


def _s(t: int | None, d: int, r: int = 0) -> dict[str, str]:
    out = {"d": str(d), "r": str(r)}
    if t is not None:
        out["t"] = str(t)
    return out


def test_timeline_from_s_repeat_rules() -> None:
    entries = [_s(0, 2, -1), _s(7, 3), _s(None, 3, 1), _s(None, 2, -1)]
    tl = timeline_from_s(entries, start_number=1, first_t=0, open_end=21.0, open_end_is_now=False)
    # 0,2,4,6 (r=-1 until t=7; the last one overlaps 7 and is cut by the next S)
    assert [tl.start(i) for i in range(len(tl))] == [0, 2, 4, 6, 7, 10, 13, 16, 18, 20]
    live = timeline_from_s(
        [_s(0, 2, -1)], start_number=1, first_t=0, open_end=7.0, open_end_is_now=True
    )
    assert len(live) == 3  # only complete segments exist yet
    with pytest.raises(ValueError, match="followed by an S with @t"):
        timeline_from_s(
            [_s(0, 2, -1), _s(None, 2)],
            start_number=1,
            first_t=0,
            open_end=None,
            open_end_is_now=True,
        )
    with pytest.raises(ValueError, match="has no end"):
        timeline_from_s(
            [_s(0, 2, -1)], start_number=1, first_t=0, open_end=None, open_end_is_now=True
        )


def test_timeline_from_s_merges_single_elements() -> None:
    entries = [_s(i * 2, 2) for i in range(1000)] + [_s(None, 2, 9), _s(3000, 2), _s(None, 1)]
    tl = timeline_from_s(entries, start_number=0, first_t=0, open_end=None, open_end_is_now=False)
    assert tl.runs == 3 and len(tl) == 1012
    assert tl.start(1009) == 2018 and tl.start(1010) == 3000 and tl.start(1011) == 3002
    assert tl.duration(1011) == 1
    with pytest.raises(ValueError, match="integer @d"):
        timeline_from_s(
            [{"t": "0"}], start_number=0, first_t=0, open_end=None, open_end_is_now=False
        )
