"""The media-playlist scan: seeking equals walking, and a 24-hour playlist resolves anywhere."""

from __future__ import annotations

import random
import time

import pytest

from pipeline.manifest.hls import resolve_hls
from pipeline.manifest.hls_scan import scan_media
from pipeline.manifest.hls_seek import block_at, can_seek
from pipeline.manifest.hls_tags import read_playlist, wall_clock_anchor
from pipeline.manifest.request import range_request
from tests.pipeline.manifest.test_hls_support import EPOCH, LOCATION, DictReader, iso

WALK_ALL = 10**9


def long_playlist(
    count: int,
    *,
    seed: int = 7,
    pdt_every: int = 1,
    implicit_ranges: bool = False,
    endlist: bool = True,
) -> str:
    """fMP4 in one file per hour, with holes, discontinuities, gap segments and MAP changes."""
    rng = random.Random(seed)
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:2"]
    lines.append('#EXT-X-MAP:URI="init0.mp4",BYTERANGE="800@0"')
    clock = EPOCH
    offset = 0
    for i in range(count):
        dur = rng.choice((2.0, 2.0, 2.0, 1.96, 2.04))
        event = rng.random()
        if event < 0.01:
            clock += rng.randint(3000, 90_000)  # the recorder was down: a hole
        elif event < 0.02:
            lines.append("#EXT-X-DISCONTINUITY")
            lines.append(f'#EXT-X-MAP:URI="init{i}.mp4"')
            clock += rng.randint(0, 4000)
        elif event < 0.03:
            lines.append("#EXT-X-GAP")
        if i % pdt_every == 0 or event < 0.02:
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{iso(clock)}")
        lines.append(f"#EXTINF:{dur:.3f},")
        size = 1000 + i
        if implicit_ranges and i % 3600:
            lines.append(f"#EXT-X-BYTERANGE:{size}")
        else:
            lines.append(f"#EXT-X-BYTERANGE:{size}@{offset}")
        offset += size
        lines.append(f"hour{i // 3600}.mp4")
        clock += round(dur * 1000)
    if endlist:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _both(text: str, lo: float, hi: float):
    source = read_playlist(text.encode(), LOCATION)
    anchor = wall_clock_anchor(source)
    walked = scan_media(source, lo, hi, anchor, seek_from_lines=WALK_ALL)
    sought = scan_media(source, lo, hi, anchor, seek_from_lines=0)
    return walked, sought


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("dense PDTs", {}),
        ("PDT every 5th", {"pdt_every": 5}),
        ("sparse PDTs", {"pdt_every": 200}),
        ("implicit ranges", {"implicit_ranges": True}),
        ("live", {"endlist": False}),
    ],
)
def test_seeking_gives_what_walking_gives(kind, options):
    text = long_playlist(4000, **options)
    full, _ = _both(text, 0.0, 1e9)
    source = read_playlist(text.encode(), LOCATION)
    middle = block_at(source, EPOCH + 4_000_000)
    seeks = kind in ("dense PDTs", "PDT every 5th", "live")
    assert (middle > 0 and can_seek(source)) == seeks  # the fast path really is taken
    assert full.end > 7000 and full.gaps and len(full.segments) < 4000
    rng = random.Random(kind)
    windows = [(0.0, 5.0), (full.end - 3.0, full.end + 60), (full.end + 5, full.end + 9)]
    windows += [(rng.uniform(0, full.end), 0.0) for _ in range(40)]
    for lo, hi in windows:
        hi = hi or lo + rng.choice((0.5, 3.0, 60.0, 400.0))
        walked, sought = _both(text, lo, hi)
        assert sought == walked, (kind, lo, hi)
    # the same fields a resolver reads, spelled out once
    s = walked.segments
    assert [x.start for x in s] == sorted(x.start for x in s)


def test_seeking_is_refused_for_implicit_byte_ranges():
    assert not can_seek(read_playlist(long_playlist(20, implicit_ranges=True).encode(), "x"))
    assert can_seek(read_playlist(long_playlist(20).encode(), "x"))


def test_implicit_byte_ranges_continue_across_a_long_playlist():
    text = long_playlist(5000, implicit_ranges=True)
    walked, _ = _both(text, 0.0, 1e9)
    ranges = [s.byte_range for s in walked.segments]
    assert all(r is not None for r in ranges)
    # within one file the sub-ranges are back to back
    same_file = [
        (a, b)
        for a, b in zip(walked.segments, walked.segments[1:], strict=False)
        if a.url == b.url and b.byte_range and b.byte_range.offset != 0
    ]
    assert same_file
    for a, b in same_file:
        assert a.byte_range and b.byte_range
        if b.start - a.start < 3:  # neighbours (a GAP segment between would break it)
            assert b.byte_range.offset == a.byte_range.offset + a.byte_range.length


def day_playlist(pdt_each: bool) -> bytes:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:0"]
    for i in range(43_200):
        if pdt_each or i == 0:
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{iso(EPOCH + 2000 * i)}")
        lines.append("#EXTINF:2.000000,")
        lines.append(f"rec/{i // 1800:02d}/seg{i:05d}.ts")
    lines.append("#EXT-X-ENDLIST")
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("pdt_each", [True, False], ids=["pdt-each", "pdt-top"])
def test_a_24_hour_playlist_resolves_at_its_start_middle_and_end(pdt_each, capsys):
    data = day_playlist(pdt_each)
    reader = DictReader()
    timings = {}
    for label, offset_s in (("start", 1.0), ("middle", 43_200.5), ("end", 86_340.0)):
        request = range_request(EPOCH + round(offset_s * 1000), None, 60_000)
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            res = resolve_hls(reader, LOCATION, data, request)
            best = min(best, time.perf_counter() - t0)
        timings[label] = best
        first = int(offset_s // 2)
        assert res.video[0].url.endswith(f"seg{first:05d}.ts")
        assert res.video[0].start == first * 2.0
        assert len(res.video) in (30, 31)
        assert res.live_edge == 86_400.0 and not res.is_live and res.gaps == ()
    with capsys.disabled():
        shown = ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in timings.items())
        # a figure (milliseconds when idle), not a budget: no test depends on the speed
        print(f"\n24 h HLS playlist ({'PDT on each' if pdt_each else 'one PDT'}): {shown}")
