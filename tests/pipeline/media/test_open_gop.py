"""Smart cut of a pure open-GOP H.264 source (x264 ``open-gop=1``, three B-frames).

Every keyframe after the first is a non-IDR I picture whose leading B pictures reference
the GOP before.  The cut re-encodes the head up to those leading pictures and copies the
bulk; the output must play through one fresh decoder, edit lists ignored, every frame once.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest

from pipeline.media import export_clip
from pipeline.media.nal import split_length_prefixed
from pipeline.storage import Blobs
from tests.fixtures.media import MakeArchive, archive_spec
from tests.pipeline.media.helpers import decode, resolve_frames

SECONDS = 64.0  # room for a 60 s clip that starts and ends mid-GOP
FIRST, COUNT = 37, 1500  # 1.48 s + 60 s: a partial GOP at each end


@pytest.fixture(scope="module")
def open_gop_archive(make_archive: MakeArchive) -> Path:
    return make_archive("dash", seconds=SECONDS, open_gop=True, bframes=3)


def _keyframe_nal_types(path: Path) -> list[set[int]]:
    """The NAL unit types of every keyframe of an fMP4 segment (4-byte lengths)."""
    with av.open(str(path)) as c:
        return [
            {n[0] & 0x1F for n in split_length_prefixed(bytes(p), 4)}
            for p in c.demux(video=0)
            if p.is_keyframe and p.size
        ]


@pytest.mark.parametrize("suffix", ["mp4", "ts"])
def test_open_gop_h264_copies_the_bulk(open_gop_archive: Path, tmp_path: Path, suffix: str) -> None:
    spec = archive_spec(open_gop_archive)
    res = resolve_frames(open_gop_archive, spec, FIRST, COUNT)
    result = export_clip(Blobs(), res, tmp_path / f"clip.{suffix}", export_type=0)
    assert result.frame_count == COUNT
    assert result.copied_frames + result.reencoded_frames == COUNT
    assert result.copied_frames >= 0.9 * COUNT, (result.copied_frames, result.reencoded_frames)
    d = decode(result.path)  # one decoder, edit lists ignored
    assert d.indices == list(range(FIRST, FIRST + COUNT))
    steps = {
        round((b - a) * float(spec.fps), 3) for a, b in zip(d.times, d.times[1:], strict=False)
    }
    assert steps == {1.0}
    assert result.first_frame_time == pytest.approx(FIRST / float(spec.fps), abs=1e-6)


def test_the_source_keyframes_are_not_idrs(open_gop_archive: Path, tmp_path: Path) -> None:
    # The fixture must keep exercising the hard case: I pictures (NAL type 1), no IDR (5).
    spec = archive_spec(open_gop_archive)
    assert spec.fps == Fraction(25) and spec.open_gop and spec.bframes == 3
    rep = open_gop_archive.parent / "vhigh"
    segment = sorted(rep.glob("t*.m4s"), key=lambda p: int(p.stem[1:]))[3]
    joined = tmp_path / "segment.mp4"
    joined.write_bytes((rep / "init.mp4").read_bytes() + segment.read_bytes())
    kinds = _keyframe_nal_types(joined)
    assert kinds and all(1 in k and 5 not in k for k in kinds)
