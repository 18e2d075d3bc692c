"""Smart cut of a pure open-GOP H.264 source (x264 ``open-gop=1``, three B-frames).

Every keyframe after the first is a non-IDR I picture whose leading B pictures reference
the GOP before.  The cut re-encodes the head up to those leading pictures and copies the
bulk; the output must play through one fresh decoder, edit lists ignored, every frame once.
"""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import av
import pytest

from pipeline.media import export_clip
from pipeline.media.bits import escape, unescape
from pipeline.media.smartcut import plan_gop
from pipeline.media.source import TimedPacket
from pipeline.media.timeline import Timeline
from pipeline.storage import Blobs
from pipeline.synthetic import read_frame_index
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
        keys = [bytes(p) for p in c.demux(video=0) if p.is_keyframe and p.size]
    return [_length_prefixed_types(k) for k in keys]


def _length_prefixed_types(sample: bytes) -> set[int]:
    kinds, i = set(), 0
    while i < len(sample):
        n = int.from_bytes(sample[i : i + 4], "big")
        kinds.add(sample[i + 4] & 0x1F)
        i += 4 + n
    return kinds


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


def _pictures(path: Path, options: dict[str, str] | None = None) -> dict[int | None, str]:
    """Digest of every decoded picture, by the frame index its barcode shows."""
    with av.open(str(path), options=options or {}) as c:
        return {
            read_frame_index(f): hashlib.sha256(f.to_ndarray().tobytes()).hexdigest()
            for f in c.decode(video=0)
        }


def _whole_source(manifest: Path, out: Path) -> Path:
    """The archive's full-size video as one fragmented MP4, decoded from its first IDR."""
    rep = manifest.parent / "vhigh"
    segments = sorted(rep.glob("t*.m4s"), key=lambda p: int(p.stem[1:]))
    out.write_bytes((rep / "init.mp4").read_bytes() + b"".join(s.read_bytes() for s in segments))
    return out


# ultrafast: CAVLC, no deblocking, one reference.  medium: CABAC, weighted P, B-pyramid
# whose reference B-frames x264 drops with marking operations (which the rewrite must
# remove right after the new IDR), three references.
@pytest.mark.parametrize("preset", ["ultrafast", "medium"])
def test_copied_pictures_decode_exactly_as_in_the_source(
    make_archive: MakeArchive, tmp_path: Path, preset: str
) -> None:
    manifest = make_archive(
        "dash", seconds=8.0, open_gop=True, bframes=3, preset=preset, audio=False
    )
    spec = archive_spec(manifest)
    res = resolve_frames(manifest, spec, FIRST, 150)
    result = export_clip(Blobs(), res, tmp_path / "clip.mp4", export_type=0)
    assert result.copied_frames >= 99  # 50-148 at least; 149 may lead keyframe 150
    source = _pictures(_whole_source(manifest, tmp_path / "source.mp4"))
    with av.logging.Capture() as logs:
        out = _pictures(result.path, {"ignore_editlist": "1"})
    assert sorted(i for i in out if i is not None) == list(range(FIRST, FIRST + 150))
    identical = sum(source[i] == digest for i, digest in out.items())
    # Every copied picture is bit-exact: its references are intact after the junction.
    assert identical >= result.copied_frames
    assert not [m for m in logs if m[0] <= av.logging.WARNING]


@pytest.mark.parametrize(
    "rbsp",
    [b"\x00\x00\x00\x00\x00\x80", b"\x01\x00\x00\x01\x00\x00\x02\x40", b"\x00\x00\x03\x00\x00\x80"],
)
def test_emulation_prevention_round_trips(rbsp: bytes) -> None:
    escaped = escape(rbsp)
    assert not any(b"\x00\x00" + bytes([k]) in escaped for k in range(3))
    assert unescape(escaped) == rbsp


def _gop(key: int, leading: int, length: int = 50) -> list[TimedPacket]:
    """Packets of an open GOP in decode order: keyframe ``key``, then ``leading`` leading
    pictures (frames key-leading .. key-1), then the rest (25 fps, archive seconds)."""
    order = [key, *range(key - leading, key), *range(key + 1, key + length - leading)]
    return [TimedPacket(b"", k / 25, k / 25, 0.04, k == key) for k in order]


def test_plan_head_reencodes_through_the_leading_pictures() -> None:
    tl = Timeline(37 / 25, 1537 / 25)
    pre, gop = _gop(0, 0), _gop(50, 1)
    plan = plan_gop(gop, tl, copying=False, after_hole=False, pre=pre, prev_gop=[], last_time=None)
    # Frames 37-49 come from decoding GOP 0 and GOP 50 up to its leading picture 49.
    assert plan.copy and plan.drop_leading and plan.upto == 2.0
    assert plan.reencode == (*pre, *gop)


def test_plan_middle_gop_is_copied_whole() -> None:
    tl = Timeline(37 / 25, 1537 / 25)
    gop = _gop(100, 1)
    plan = plan_gop(
        gop, tl, copying=True, after_hole=False, pre=[], prev_gop=_gop(50, 1), last_time=3.92
    )
    assert plan.copy and not plan.drop_leading and plan.reencode == ()


def test_plan_tail_decodes_the_gop_before_for_its_leading_pictures() -> None:
    # The clip ends on keyframe 1500: only its leading picture 1499, decoded after it, is
    # wanted, so the wanted pictures are no decode-order prefix and cannot be copied.
    tl = Timeline(37 / 25, 1500 / 25)
    prev, gop = _gop(1450, 1), _gop(1500, 1)
    plan = plan_gop(
        gop, tl, copying=True, after_hole=False, pre=[], prev_gop=prev, last_time=1498 / 25
    )
    assert not plan.copy and plan.then == "done" and plan.upto == tl.end
    assert plan.reencode == (*prev, *gop)


def test_plan_tail_copies_the_pictures_before_the_end_that_lead_in_decode_order() -> None:
    # Decode order 1500, 1499, 1501 ... 1548: the wanted 1499-1536 come first.
    tl = Timeline(37 / 25, 1537 / 25)
    prev, gop = _gop(1450, 1), _gop(1500, 1)
    plan = plan_gop(
        gop, tl, copying=True, after_hole=False, pre=[], prev_gop=prev, last_time=1498 / 25
    )
    assert plan.copy and plan.then == "done" and plan.reencode == ()


def test_plan_tail_reencodes_when_a_later_picture_is_decoded_before_a_wanted_one() -> None:
    # B-frames: P 1504 is decoded before B 1502, 1501, 1503; the clip ends before 1504.
    tl = Timeline(37 / 25, 1504 / 25)
    order = [1500, 1504, 1502, 1501, 1503, *range(1505, 1550)]
    gop = [TimedPacket(b"", k / 25, k / 25, 0.04, k == 1500) for k in order]
    plan = plan_gop(
        gop, tl, copying=True, after_hole=False, pre=[], prev_gop=_gop(1450, 0), last_time=1499 / 25
    )
    assert not plan.copy and plan.then == "done" and plan.reencode == tuple(gop)


@pytest.mark.parametrize("export_type", [0, 1])
def test_after_a_gap_decoding_restarts_on_the_open_gop_keyframe(
    make_archive: MakeArchive, tmp_path: Path, export_type: int
) -> None:
    # 1.96-3.96 s is not in the archive.  Frame 99 (3.96 s) leads keyframe 100 and
    # references the lost GOP, so it cannot be shown; from keyframe 100 on every frame is.
    # Fed on as if nothing was missing, FFmpeg withheld frames 100-110 (and lost 48).
    manifest = make_archive("dash", seconds=12.0, open_gop=True, gap=(2.0, 4.0))
    res = resolve_frames(manifest, archive_spec(manifest), FIRST, 200)
    result = export_clip(Blobs(), res, tmp_path / "clip.mp4", export_type=export_type)
    assert decode(result.path).indices == [*range(FIRST, 49), *range(100, FIRST + 200)]
