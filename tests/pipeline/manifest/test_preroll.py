"""Resolution.preroll: the video segment just before the first one, within the same run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.manifest import RangeRequest, resolve
from pipeline.model import Resolution
from pipeline.storage import Blobs
from tests.fixtures.media import MakeArchive, archive_spec


def _resolve(manifest: Path, frame: int, frames: int = 10) -> Resolution:
    spec = archive_spec(manifest)
    start = spec.start_pos_ms(frame)
    length = spec.start_pos_ms(frame + frames) - start
    # StartTime too, for the playlist without PROGRAM-DATE-TIME
    request = RangeRequest(start, (start - (spec.epoch_ms or 0)) / 1000, length)
    return resolve(Blobs(), str(manifest), request)


def _check_preroll(res: Resolution) -> None:
    pre = res.preroll
    assert pre is not None
    assert pre.start + pre.duration == pytest.approx(res.video[0].start, abs=1e-3)
    assert not pre.discontinuity
    assert (pre.url, pre.byte_range) != (res.video[0].url, res.video[0].byte_range)
    assert pre.init_url == res.video[0].init_url


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
def test_preroll_is_the_segment_before(
    make_archive: MakeArchive, kind: str, options: dict[str, Any]
) -> None:
    manifest = make_archive(kind, **options)
    res = _resolve(manifest, 60)
    _check_preroll(res)
    assert res.preroll is not None and res.preroll.start == pytest.approx(0.0, abs=1e-3)
    assert _resolve(manifest, 10).preroll is None  # the archive starts there


def test_no_preroll_across_a_period_boundary(make_archive: MakeArchive) -> None:
    manifest = make_archive("dash", periods=3)  # Periods start at 2 s and 4 s
    assert _resolve(manifest, 50).preroll is None
    assert _resolve(manifest, 60).preroll is None
    assert _resolve(manifest, 40, 20).preroll is None  # starts in the first segment


def test_no_preroll_across_an_hls_discontinuity(make_archive: MakeArchive) -> None:
    manifest = make_archive("hls", container="ts", discontinuity_at=2.0)
    assert _resolve(manifest, 60).preroll is None
    _check_preroll(_resolve(manifest, 110))  # same run as the segment before


@pytest.mark.parametrize("kind", ["dash", "hls"])
def test_no_preroll_after_a_gap(make_archive: MakeArchive, kind: str) -> None:
    manifest = make_archive(kind, gap=(2.0, 4.0))
    assert _resolve(manifest, 110).preroll is None  # the segment before is the hole


def test_seeking_a_long_playlist_keeps_the_preroll() -> None:
    # Long PDT-dated playlists are bisected, not walked: the walk must still begin early
    # enough to see the segment before the window.
    from pipeline.manifest.hls_scan import scan_media
    from pipeline.manifest.hls_tags import read_playlist, wall_clock_anchor
    from tests.pipeline.manifest.test_hls_scan import long_playlist

    source = read_playlist(long_playlist(4000, seed=3).encode(), "/a/index.m3u8")
    anchor = wall_clock_anchor(source)
    walked = scan_media(source, 0.0, 1e9, anchor, seek_from_lines=10**9)
    checked = 0
    for a, b in zip(walked.segments, walked.segments[1:], strict=False):
        if b.discontinuity or abs(a.start + a.duration - b.start) > 1e-3 or checked > 50:
            continue
        for lo in (b.start + 0.01, b.start + b.duration * 0.9):
            sought = scan_media(source, lo, lo + 1, anchor, seek_from_lines=0)
            assert sought.segments[0] == b and sought.preroll is not None
            assert (sought.preroll.url, sought.preroll.byte_range) == (a.url, a.byte_range)
            assert sought.preroll.start == pytest.approx(a.start)
        checked += 1
    assert checked > 50
