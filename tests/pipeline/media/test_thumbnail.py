"""grab_thumbnail: the exact frame, decoded from the keyframe before it, fetched narrowly."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import pytest

from pipeline.errors import MediaError
from pipeline.media import grab_thumbnail, resolve_thumbnail_point
from pipeline.model import ByteRange
from pipeline.storage import Blobs
from pipeline.synthetic import ArchiveSpec, GrowingArchive, read_frame_index
from tests.fixtures.media import MakeArchive, archive_spec
from tests.pipeline.media.helpers import request, resolve_frames


class CountingReader:
    def __init__(self) -> None:
        self.blobs = Blobs()
        self.reads: list[str] = []

    def read(self, location: str, byte_range: ByteRange | None = None) -> bytes:
        self.reads.append(location)
        return self.blobs.read(location, byte_range)


def jpeg_index(path: Path) -> tuple[int | None, int, int]:
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        return read_frame_index(frame), frame.width, frame.height


# 0: the very first frame; 37: mid-GOP; 49: just before a keyframe; 50: a keyframe;
# 51: just after it; 149: the last frame of the recording.
@pytest.mark.parametrize("index", [0, 37, 49, 50, 51, 149])
@pytest.mark.parametrize("kind", ["dash", "hls"])
def test_exact_frame(make_archive: MakeArchive, tmp_path: Path, kind: str, index: int) -> None:
    manifest = make_archive(kind)
    spec = archive_spec(manifest)
    res = resolve_frames(manifest, spec, index, 1)
    result = grab_thumbnail(Blobs(), res, tmp_path / "t.jpg")
    assert jpeg_index(result.path) == (index, spec.width, spec.height)
    assert result.time == pytest.approx(index / float(spec.fps), abs=1e-6)
    assert (result.width, result.height) == (spec.width, spec.height)
    assert result.size == result.path.stat().st_size


@pytest.mark.parametrize("index", [37, 51])
def test_exact_frame_hevc(make_archive: MakeArchive, tmp_path: Path, index: int) -> None:
    manifest = make_archive("dash", codec="hevc")
    res = resolve_frames(manifest, archive_spec(manifest), index, 1)
    assert jpeg_index(grab_thumbnail(Blobs(), res, tmp_path / "t.jpg").path)[0] == index


def test_start_between_frames_takes_the_next_frame(
    make_archive: MakeArchive, tmp_path: Path
) -> None:
    from pipeline.manifest import RangeRequest, resolve

    manifest = make_archive("dash")
    spec = archive_spec(manifest)
    req = RangeRequest(start_pos_ms=spec.start_pos_ms(37) + 1, start_time_s=None, duration_ms=1000)
    res = resolve(Blobs(), str(manifest), req)
    assert jpeg_index(grab_thumbnail(Blobs(), res, tmp_path / "t.jpg").path)[0] == 38


def test_max_width_keeps_aspect_with_even_sizes(make_archive: MakeArchive, tmp_path: Path) -> None:
    manifest = make_archive("dash")
    res = resolve_frames(manifest, archive_spec(manifest), 37, 1)
    result = grab_thumbnail(Blobs(), res, tmp_path / "t.jpg", max_width=101)
    assert (result.width, result.height) == (100, 56)
    assert jpeg_index(result.path) == (37, 100, 56)
    wide = grab_thumbnail(Blobs(), res, tmp_path / "w.jpg", max_width=4000)
    assert (wide.width, wide.height) == (320, 180)


def test_fetches_only_the_segment_holding_the_frame(
    make_archive: MakeArchive, tmp_path: Path
) -> None:
    manifest = make_archive("dash", seconds=10)
    spec = archive_spec(manifest)
    res = resolve_frames(manifest, spec, 120, 100)  # the range spans three segments
    reader = CountingReader()
    grab_thumbnail(reader, res, tmp_path / "t.jpg")
    media = [r for r in reader.reads if r.endswith(".m4s")]
    assert media == [res.video[0].url]
    assert all("audio" not in r for r in reader.reads)


def test_corrupt_segment_at_the_point_names_it(make_archive: MakeArchive, tmp_path: Path) -> None:
    src = make_archive("dash").parent
    shutil.copytree(src, tmp_path / "a")
    manifest = tmp_path / "a" / "stream.mpd"
    res = resolve_frames(manifest, ArchiveSpec(), 60, 1)
    Path(res.video[0].url).write_bytes(b"\x00" * 100)
    with pytest.raises(MediaError) as err:
        grab_thumbnail(Blobs(), res, tmp_path / "t.jpg")
    assert err.value.obj == res.video[0].url
    assert not (tmp_path / "t.jpg").exists()


def test_open_gop_leading_picture_is_never_a_wrong_frame(
    make_archive: MakeArchive, tmp_path: Path
) -> None:
    # Frame 49 is presented before keyframe 50 but decoded after it, with references in
    # the previous segment.  Either the right frame or a clear error, never frame 50.
    manifest = make_archive("dash", open_gop=True)
    res = resolve_frames(manifest, archive_spec(manifest), 49, 1)
    try:
        result = grab_thumbnail(Blobs(), res, tmp_path / "t.jpg")
    except MediaError as err:
        assert err.obj is not None
    else:
        assert jpeg_index(result.path)[0] == 49
    res = resolve_frames(manifest, archive_spec(manifest), 48, 2)
    assert jpeg_index(grab_thumbnail(Blobs(), res, tmp_path / "u.jpg").path)[0] == 48


@pytest.mark.parametrize("kind", ["dash", "hls"])
@pytest.mark.parametrize("index", [50, 65, 99])  # the gap's first frame, inside, its last
def test_point_inside_a_gap_resolves_to_the_first_frame_after_it(
    make_archive: MakeArchive, tmp_path: Path, kind: str, index: int
) -> None:
    # 2-4 s is missing; a 40 ms window at the point holds no segment, so it has to widen.
    manifest = make_archive(kind, gap=(2.0, 4.0))
    spec = archive_spec(manifest)
    reader = CountingReader()
    res = resolve_thumbnail_point(reader, str(manifest), request(spec, index, 1))
    assert res.start == pytest.approx(index / float(spec.fps))
    result = grab_thumbnail(reader, res, tmp_path / "t.jpg")
    assert jpeg_index(result.path)[0] == 100
    assert result.time == pytest.approx(4.0)


def test_point_outside_a_gap_keeps_the_window(make_archive: MakeArchive) -> None:
    manifest = make_archive("dash")
    spec = archive_spec(manifest)
    res = resolve_thumbnail_point(Blobs(), str(manifest), request(spec, 37, 1))
    assert res.end - res.start == pytest.approx(1 / float(spec.fps))


def test_point_past_the_live_edge_stops_widening(tmp_path: Path) -> None:
    spec = ArchiveSpec()
    archive = GrowingArchive(tmp_path / "rec", spec, kind="hls")
    archive.publish_until(2.0)
    res = resolve_thumbnail_point(Blobs(), str(archive.manifest), request(spec, 100, 25))
    assert res.video == () and res.end - res.start == pytest.approx(1.0)
    with pytest.raises(MediaError):
        grab_thumbnail(Blobs(), res, tmp_path / "t.jpg")
