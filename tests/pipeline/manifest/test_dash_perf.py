"""A 24-hour archive (43,200 two-second segments) resolves, in every spelling.

The time each resolution took is printed (milliseconds on an idle machine), not asserted: no
test may depend on the machine's speed, and CI runs on a busy 2-core one."""

from __future__ import annotations

import time

import pytest

from pipeline.manifest import range_request
from pipeline.manifest.dash import resolve_dash
from tests.pipeline.manifest.test_dash import AST, EPOCH, MPD_PATH, DictReader, mpd

SEGMENTS = 43_200  # 24 h of 2 s


def _timeline(ts: int, seg: int, individual: bool) -> str:
    if not individual:
        return f'<SegmentTimeline><S t="0" d="{seg * ts}" r="{SEGMENTS - 1}"/></SegmentTimeline>'
    # Every S spelled out, with @t on each (as some packagers write them).
    rows = "".join(f'<S t="{i * seg * ts}" d="{seg * ts}"/>' for i in range(SEGMENTS))
    return f"<SegmentTimeline>{rows}</SegmentTimeline>"


def day_mpd(layout: str) -> str:
    sets = []
    for kind, ts, rep in (
        ("video", 90000, '<Representation id="v" bandwidth="1" width="320" height="180"/>'),
        ("audio", 48000, '<Representation id="a" bandwidth="1" codecs="mp4a.40.2"/>'),
    ):
        if layout == "duration":
            template = (
                f'<SegmentTemplate timescale="{ts}" duration="{2 * ts}" startNumber="1"'
                ' media="$RepresentationID$/$Number%06d$.m4s"'
                ' initialization="$RepresentationID$/i.mp4"/>'
            )
        else:
            template = (
                f'<SegmentTemplate timescale="{ts}" media="$RepresentationID$/$Time$.m4s"'
                ' initialization="$RepresentationID$/i.mp4">'
                f"{_timeline(ts, 2, layout == 'individual')}</SegmentTemplate>"
            )
        sets.append(f'<AdaptationSet contentType="{kind}">{template}{rep}</AdaptationSet>')
    attrs = f'type="static" availabilityStartTime="{AST}" mediaPresentationDuration="PT24H"'
    return mpd(f'<Period id="day" start="PT0S">{"".join(sets)}</Period>', attrs=attrs)


@pytest.mark.parametrize("layout", ["repeat", "individual", "duration"])
def test_a_minute_of_a_day_long_archive_resolves_in_every_spelling(layout: str) -> None:
    data = day_mpd(layout).encode()
    reader = DictReader({MPD_PATH: data})
    # One minute at 13:00:01.5 into the day.
    start_ms = 13 * 3600_000 + 1500
    request = range_request(EPOCH + start_ms, None, 60_000)
    t0 = time.perf_counter()
    res = resolve_dash(reader, MPD_PATH, data, request)
    elapsed = time.perf_counter() - t0
    print(f"\n{layout}: {len(data) / 1e6:.2f} MB MPD resolved in {elapsed * 1000:.1f} ms")

    first = (13 * 3600) // 2  # index of the segment holding 13:00:01.5 → starts at 13:00:00
    assert len(res.video) == 31 and len(res.audio) == 31  # 13:00:00 .. 13:01:02
    assert res.video[0].start == 13 * 3600.0 and res.video[-1].start == 13 * 3600.0 + 60
    if layout == "duration":
        assert res.video[0].url == f"/arch/cam1/v/{first + 1:06d}.m4s"
    else:
        assert res.video[0].url == f"/arch/cam1/v/{first * 2 * 90000}.m4s"
        assert res.audio[-1].url == f"/arch/cam1/a/{(first + 30) * 2 * 48000}.m4s"
    assert (res.archive_start, res.live_edge) == (0.0, 86400.0)
    assert res.gaps == () and res.missing == 0.0


def test_day_long_request_over_a_day_long_archive() -> None:
    data = day_mpd("repeat").encode()
    request = range_request(EPOCH, None, 24 * 3600_000)
    t0 = time.perf_counter()
    res = resolve_dash(DictReader({MPD_PATH: data}), MPD_PATH, data, request)
    elapsed = time.perf_counter() - t0
    print(f"\nwhole day: {len(res.video)} + {len(res.audio)} refs in {elapsed * 1000:.1f} ms")
    assert len(res.video) == SEGMENTS and len(res.audio) == SEGMENTS
    assert res.video[-1].start == 86398.0 and res.missing == 0.0
