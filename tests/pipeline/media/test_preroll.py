"""Open-GOP leading pictures at the start: the preroll segment, read only when needed.

With ``open_gop=True`` and 50-frame GOPs, frame 49 is presented before I-frame 50 but
decoded after it, and references the GOP before: the segment holding it starts at 1.96 s,
and its references are in ``Resolution.preroll``.  With two B-frames frame 48 is the last
trailing picture of the segment before (a start that needs no preroll); with four, frames
46-49 are all leading pictures of I-frame 50.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pipeline.errors import SourceNotFound
from pipeline.media import export_clip, grab_thumbnail
from pipeline.model import ByteRange
from pipeline.storage import Blobs
from tests.fixtures.media import MakeArchive, archive_spec
from tests.pipeline.media.helpers import decode, resolve_frames
from tests.pipeline.media.test_thumbnail import jpeg_index

COUNT = 25


class CountingReader:
    """The real Blobs reading the real files, remembering what was read."""

    def __init__(self) -> None:
        self.blobs = Blobs()
        self.reads: list[tuple[str, ByteRange | None]] = []

    def read(self, location: str, byte_range: ByteRange | None = None) -> bytes:
        self.reads.append((location, byte_range))
        return self.blobs.read(location, byte_range)

    def count(self, location: str, byte_range: ByteRange | None) -> int:
        return self.reads.count((location, byte_range))


def _archive(make_archive: MakeArchive, kind: str, codec: str, bframes: int = 2) -> Path:
    if kind == "dash":
        return make_archive("dash", open_gop=True, codec=codec, bframes=bframes)
    return make_archive("hls", open_gop=True, codec=codec, bframes=bframes, container="ts")


def _is_leading(segment_start: float, index: int) -> bool:
    """Whether frame ``index`` presents before the first keyframe of its segment."""
    first = round(segment_start * 25)
    keyframe = -(-first // 50) * 50  # keyframes are every 50 frames
    return first <= index < keyframe


@pytest.mark.parametrize("codec", ["h264", "hevc"])
@pytest.mark.parametrize("kind", ["dash", "hls"])
def test_leading_picture_start_resolves_with_a_preroll(
    make_archive: MakeArchive, kind: str, codec: str
) -> None:
    manifest = _archive(make_archive, kind, codec)
    spec = archive_spec(manifest)
    res = resolve_frames(manifest, spec, 49, COUNT)
    assert res.video[0].start == pytest.approx(49 / 25, abs=1e-3)  # leading picture first
    assert res.preroll is not None
    assert res.preroll.start + res.preroll.duration == pytest.approx(res.video[0].start, abs=1e-3)
    assert res.preroll.url != res.video[0].url or res.preroll.byte_range != res.video[0].byte_range
    # The archive's first segment has nothing before it.
    assert resolve_frames(manifest, spec, 10, COUNT).preroll is None


@pytest.mark.parametrize("bframes", [2, 4])
@pytest.mark.parametrize("index", [48, 49])
@pytest.mark.parametrize("codec", ["h264", "hevc"])
@pytest.mark.parametrize("kind", ["dash", "hls"])
def test_thumbnail_on_a_leading_picture(
    make_archive: MakeArchive, tmp_path: Path, kind: str, codec: str, index: int, bframes: int
) -> None:
    manifest = _archive(make_archive, kind, codec, bframes)
    spec = archive_spec(manifest)
    res = resolve_frames(manifest, spec, index, 1)
    reader = CountingReader()
    result = grab_thumbnail(reader, res, tmp_path / "t.jpg")
    assert jpeg_index(result.path) == (index, spec.width, spec.height)
    assert result.time == pytest.approx(index / 25, abs=1e-6)
    leading = _is_leading(res.video[0].start, index)
    assert leading == (index == 49 or bframes == 4)
    assert res.preroll is not None or not leading
    if res.preroll is not None:
        assert reader.count(res.preroll.url, res.preroll.byte_range) == int(leading)


@pytest.mark.parametrize("export_type", [0, 1, 2])
@pytest.mark.parametrize(("index", "bframes"), [(48, 2), (49, 2), (48, 4), (49, 4)])
@pytest.mark.parametrize("codec", ["h264", "hevc"])
@pytest.mark.parametrize("kind", ["dash", "hls"])
def test_clip_starting_on_a_leading_picture(
    make_archive: MakeArchive,
    tmp_path: Path,
    kind: str,
    codec: str,
    index: int,
    bframes: int,
    export_type: int,
) -> None:
    manifest = _archive(make_archive, kind, codec, bframes)
    spec = archive_spec(manifest)
    res = resolve_frames(manifest, spec, index, COUNT)
    suffix = "ts" if kind == "hls" else "mp4"
    reader = CountingReader()
    result = export_clip(reader, res, tmp_path / f"c.{suffix}", export_type=export_type)
    assert decode(result.path).indices == list(range(index, index + COUNT))
    assert result.frame_count == COUNT
    assert result.first_frame_time == pytest.approx(index / 25, abs=1e-6)
    if res.preroll is not None:
        leading = _is_leading(res.video[0].start, index)
        assert reader.count(res.preroll.url, res.preroll.byte_range) == int(leading)


@pytest.mark.parametrize("index", [50, 60])
@pytest.mark.parametrize("kind", ["dash", "hls"])
def test_closed_gop_start_never_reads_the_preroll(
    make_archive: MakeArchive, tmp_path: Path, kind: str, index: int
) -> None:
    manifest = make_archive(kind) if kind == "dash" else make_archive("hls", container="ts")
    spec = archive_spec(manifest)
    res = resolve_frames(manifest, spec, index, COUNT)
    assert res.preroll is not None  # there is one: it is simply not needed
    reader = CountingReader()
    thumb = grab_thumbnail(reader, res, tmp_path / "t.jpg")
    assert jpeg_index(thumb.path)[0] == index
    for export_type in (0, 1):
        clip = export_clip(reader, res, tmp_path / f"c{export_type}.mp4", export_type=export_type)
        assert decode(clip.path).indices == list(range(index, index + COUNT))
    assert reader.count(res.video[0].url, res.video[0].byte_range) == 3
    assert reader.count(res.preroll.url, res.preroll.byte_range) == 0


class _Unreadable(CountingReader):
    def __init__(self, location: str) -> None:
        super().__init__()
        self.location = location

    def read(self, location: str, byte_range: ByteRange | None = None) -> bytes:
        if location == self.location:
            raise SourceNotFound("gone", obj=location)
        return super().read(location, byte_range)


@pytest.mark.parametrize("how", ["no preroll", "unreadable"])
def test_leading_pictures_without_their_references_are_reported(
    make_archive: MakeArchive, tmp_path: Path, how: str
) -> None:
    # Frames 46-49 reference a segment the clip cannot have: it starts at keyframe 50 and
    # says that 160 ms are missing, rather than showing broken pictures or nothing.
    manifest = _archive(make_archive, "dash", "h264", bframes=4)
    res = resolve_frames(manifest, archive_spec(manifest), 46, COUNT)
    preroll = res.preroll
    assert preroll is not None
    reader: CountingReader = CountingReader()
    if how == "no preroll":
        res = dataclasses.replace(res, preroll=None)
    else:
        reader = _Unreadable(preroll.url)
    result = export_clip(reader, res, tmp_path / "c.mp4", export_type=0)
    assert decode(result.path).indices == list(range(50, 46 + COUNT))
    assert [(g.start, g.end, g.reason) for g in result.gaps] == [(1.84, 2.0, "missing")]
    assert result.missing_ms == 160 and result.first_frame_time == 2.0
