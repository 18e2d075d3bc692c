"""Leading pictures at the end: the postroll segment, read only when the frames fall short.

In these archives a segment's manifest time is its keyframe's, and the open-GOP leading
pictures presented just before that keyframe are stored after it, in its segment.  A range
ending on such a picture is served by the window's last segment plus ``Resolution.postroll``;
a range ending anywhere else never reads the postroll.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pipeline.errors import MediaError
from pipeline.media import export_clip, grab_thumbnail
from pipeline.model import Resolution
from tests.fixtures.packagers import Packaged, package
from tests.pipeline.media.helpers import decode
from tests.pipeline.media.test_packagers import resolve_frames
from tests.pipeline.media.test_preroll import CountingReader, _Unreadable
from tests.pipeline.media.test_thumbnail import jpeg_index

FAMILIES = [
    "ffmpeg-dash-duration-h264-2997-open",
    "ffmpeg-hls-fmp4-hevc-open",
    "ffmpeg-hls-ts-h264-open",
    "hls-ts-hevc-open-leading",
]
_ARCHIVES: dict[str, Packaged] = {}


@pytest.fixture(scope="module", params=FAMILIES)
def archive(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Packaged:
    family: str = request.param
    if family not in _ARCHIVES:
        _ARCHIVES[family] = package(family, tmp_path_factory.mktemp("packaged"))
    return _ARCHIVES[family]


def _ending_before_keyframe(archive: Packaged) -> tuple[int, int, Resolution]:
    gop = archive.source.gop
    first, last = gop + 12, 2 * gop - 1  # frame 2 * gop - 1: a leading picture of 2 * gop
    return first, last, resolve_frames(archive, first, last - first + 1)


def _reads(reader: CountingReader, res: Resolution) -> int:
    assert res.postroll is not None
    return reader.count(res.postroll.url, res.postroll.byte_range)


@pytest.mark.parametrize("export_type", [0, 1])
def test_a_clip_ending_on_a_leading_picture_reads_the_postroll_once(
    archive: Packaged, tmp_path: Path, export_type: int
) -> None:
    first, last, res = _ending_before_keyframe(archive)
    reader = CountingReader()
    result = export_clip(reader, res, tmp_path / "c.mp4", export_type=export_type)
    assert decode(result.path).indices == list(range(first, last + 1))
    assert (result.missing_ms, result.gaps) == (0, ())
    assert _reads(reader, res) == 1


@pytest.mark.parametrize("export_type", [0, 1])
def test_a_clip_ending_inside_its_last_segment_never_reads_the_postroll(
    archive: Packaged, tmp_path: Path, export_type: int
) -> None:
    gop = archive.source.gop
    first, count = gop + 12, gop - 20  # ends eight frames before the next keyframe
    res = resolve_frames(archive, first, count)
    reader = CountingReader()
    result = export_clip(reader, res, tmp_path / "c.mp4", export_type=export_type)
    assert decode(result.path).indices == list(range(first, first + count))
    assert result.missing_ms == 0
    assert _reads(reader, res) == 0


def test_a_thumbnail_reads_the_postroll_only_for_a_leading_picture(
    archive: Packaged, tmp_path: Path
) -> None:
    gop = archive.source.gop
    for index, reads in ((2 * gop - 8, 0), (2 * gop - 1, 1)):
        res = resolve_frames(archive, index, 1)
        reader = CountingReader()
        result = grab_thumbnail(reader, res, tmp_path / "t.jpg")
        assert jpeg_index(result.path)[0] == index
        assert _reads(reader, res) == reads


@pytest.mark.parametrize("how", ["no postroll", "live edge", "unreadable"])
def test_leading_pictures_without_the_postroll_are_reported(
    archive: Packaged, tmp_path: Path, how: str
) -> None:
    first, last, res = _ending_before_keyframe(archive)
    postroll = res.postroll
    assert postroll is not None
    reader = CountingReader()
    if how == "unreadable":
        reader = _Unreadable(postroll.url)
    else:
        res = dataclasses.replace(res, postroll=None, is_live=how == "live edge")
    result = export_clip(reader, res, tmp_path / "c.mp4", export_type=1)
    got = decode(result.path).indices
    assert got and got == list(range(first, first + len(got)))
    lost = last + 1 - (first + len(got))
    assert lost >= 1  # the leading pictures of the next keyframe are not in the window
    reason = "live_edge" if how == "live edge" else "missing"
    [gap] = result.gaps
    assert (gap.end, gap.reason) == (res.end, reason)
    assert gap.start == pytest.approx((first + len(got)) / archive.fps, abs=1e-3)
    assert result.missing_ms == round((res.end - gap.start) * 1000)
    assert round(result.missing_ms * archive.fps / 1000) == lost


def test_a_thumbnail_of_a_leading_picture_without_the_postroll_is_an_error(
    archive: Packaged, tmp_path: Path
) -> None:
    res = resolve_frames(archive, 2 * archive.source.gop - 1, 1)
    with pytest.raises(MediaError):
        grab_thumbnail(
            CountingReader(), dataclasses.replace(res, postroll=None), tmp_path / "t.jpg"
        )
