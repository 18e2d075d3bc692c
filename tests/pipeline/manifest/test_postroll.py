"""Resolution.postroll: the video segment just after the last one, within the same run."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.manifest.hls_scan import scan_media
from pipeline.manifest.hls_tags import read_playlist, wall_clock_anchor
from pipeline.model import Resolution
from tests.fixtures.media import MakeArchive
from tests.pipeline.manifest.test_hls_scan import long_playlist
from tests.pipeline.manifest.test_preroll import _resolve


def _check_postroll(res: Resolution) -> None:
    post, last = res.postroll, res.video[-1]
    assert post is not None
    assert post.start == pytest.approx(last.start + last.duration, abs=1e-3)
    assert not post.discontinuity
    assert (post.url, post.byte_range) != (last.url, last.byte_range)
    assert post.init_url == last.init_url


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("dash", {}),
        ("dash", {"layout": "timeline-number"}),
        ("dash", {"layout": "template-duration"}),
        ("dash", {"layout": "segment-list"}),
        ("dash", {"layout": "segment-base"}),
        ("hls", {"container": "ts"}),
        ("hls", {"container": "fmp4"}),
        ("hls", {"container": "ts", "pdt": False}),
    ],
)
def test_postroll_is_the_segment_after(
    make_archive: MakeArchive, kind: str, options: dict[str, Any]
) -> None:
    manifest = make_archive(kind, **options)  # 6 s: three 2 s segments
    res = _resolve(manifest, 60)
    _check_postroll(res)
    assert res.postroll is not None and res.postroll.start == pytest.approx(4.0, abs=1e-3)
    assert _resolve(manifest, 110).postroll is None  # the archive ends there


def test_no_postroll_across_a_period_boundary(make_archive: MakeArchive) -> None:
    manifest = make_archive("dash", periods=3)  # Periods start at 2 s and 4 s
    # one segment a Period: the segment after the window is always in the next one
    assert _resolve(manifest, 10).postroll is None
    assert _resolve(manifest, 60).postroll is None
    assert _resolve(manifest, 40, 20).postroll is None


def test_no_postroll_across_an_hls_discontinuity(make_archive: MakeArchive) -> None:
    manifest = make_archive("hls", container="ts", discontinuity_at=2.0)
    assert _resolve(manifest, 10).postroll is None
    _check_postroll(_resolve(manifest, 60))  # same run as the segment after


@pytest.mark.parametrize("kind", ["dash", "hls"])
def test_no_postroll_before_a_gap(make_archive: MakeArchive, kind: str) -> None:
    manifest = make_archive(kind, gap=(2.0, 4.0))
    assert _resolve(manifest, 10).postroll is None  # the segment after is the hole


def test_seeking_a_long_playlist_keeps_the_postroll() -> None:
    # A bisected playlist stops one segment after the window: that one is the postroll.
    source = read_playlist(long_playlist(4000, seed=5).encode(), "/a/index.m3u8")
    anchor = wall_clock_anchor(source)
    walked = scan_media(source, 0.0, 1e9, anchor, seek_from_lines=10**9)
    checked = 0
    for a, b in zip(walked.segments, walked.segments[1:], strict=False):
        if b.discontinuity or abs(a.start + a.duration - b.start) > 1e-3 or checked > 50:
            continue
        for hi in (a.start + 0.01, b.start):
            sought = scan_media(source, hi - 0.5, hi, anchor, seek_from_lines=0)
            assert sought.segments[-1] == a and sought.postroll is not None
            assert (sought.postroll.url, sought.postroll.byte_range) == (b.url, b.byte_range)
            assert sought.postroll.start == pytest.approx(b.start)
        checked += 1
    assert checked > 50
