"""Resolve real generated DASH archives (pipeline.synthetic) and check them against the disk.

Beyond names and counts, each segment's earliest presentation time (its ``tfdt`` plus the
``trun`` durations and composition offsets, read from the bytes the resolution points at)
must land on the archive time the resolution claims for it: that is what the media work
relies on when it maps decoded timestamps through ``media_offset``.
"""

from __future__ import annotations

import itertools
import struct
from fractions import Fraction
from pathlib import Path

import pytest

from pipeline.manifest import range_request, resolve
from pipeline.model import Resolution, SegmentRef
from pipeline.storage import Blobs
from pipeline.synthetic import LAYOUTS, ArchiveSpec, GrowingArchive, write_dash

SPEC = ArchiveSpec(seconds=6.0)
EPOCH = SPEC.epoch_ms or 0


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> dict[bytes, tuple[int, int]]:
    """Top-level boxes in data[start:end] → (body offset, body end), first of each type."""
    out: dict[bytes, tuple[int, int]] = {}
    pos, end = start, len(data) if end is None else end
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        out.setdefault(kind, (pos + header, pos + size))
        pos += size
    return out


def _path(data: bytes, *kinds: bytes) -> tuple[int, int]:
    span = (0, len(data))
    for kind in kinds:
        span = _boxes(data, *span)[kind]
    return span


def media_timescale(init: bytes) -> int:
    body, _ = _path(init, b"moov", b"trak", b"mdia", b"mdhd")
    version = init[body]
    return struct.unpack_from(">I", init, body + (20 if version else 12))[0]


def trex_duration(init: bytes) -> int:
    try:
        body, _ = _path(init, b"moov", b"mvex", b"trex")
    except KeyError:
        return 0
    return struct.unpack_from(">I", init, body + 12)[0]


def earliest_pts(init: bytes, segment: bytes) -> int:
    """Earliest presentation time of a fragment: tfdt + decode durations + composition offsets."""
    body, _ = _path(segment, b"moof", b"traf", b"tfdt")
    fmt = ">Q" if segment[body] else ">I"
    dts = struct.unpack_from(fmt, segment, body + 4)[0]
    tfhd, _ = _path(segment, b"moof", b"traf", b"tfhd")
    flags = int.from_bytes(segment[tfhd + 1 : tfhd + 4], "big")
    default_duration = trex_duration(init)
    pos = tfhd + 8 + (8 if flags & 0x1 else 0) + (4 if flags & 0x2 else 0)
    if flags & 0x8:
        default_duration = struct.unpack_from(">I", segment, pos)[0]
    trun, _ = _path(segment, b"moof", b"traf", b"trun")
    version, tflags = segment[trun], int.from_bytes(segment[trun + 1 : trun + 4], "big")
    (count,) = struct.unpack_from(">I", segment, trun + 4)
    pos = trun + 8 + (4 if tflags & 0x1 else 0) + (4 if tflags & 0x4 else 0)
    earliest = None
    for _ in range(count):
        duration, cto = default_duration, 0
        if tflags & 0x100:
            duration = struct.unpack_from(">I", segment, pos)[0]
            pos += 4
        pos += (4 if tflags & 0x200 else 0) + (4 if tflags & 0x400 else 0)
        if tflags & 0x800:
            cto = struct.unpack_from(">i" if version else ">I", segment, pos)[0]
            pos += 4
        earliest = dts + cto if earliest is None else min(earliest, dts + cto)
        dts += duration
    assert earliest is not None
    return earliest


def read_ref(blobs: Blobs, ref: SegmentRef) -> tuple[bytes, bytes]:
    assert ref.init_url is not None
    return blobs.read(ref.init_url, ref.init_range), blobs.read(ref.url, ref.byte_range)


NOMINAL = ("template-duration", "segment-list")  # @duration: segment times are nominal


def check_against_media(blobs: Blobs, refs: tuple[SegmentRef, ...], layout: str) -> None:
    # With @duration addressing the MPD only gives nominal slots, and an AAC fragment may
    # start up to a frame (1024 samples) off its slot; explicit timelines and sidx are exact.
    tolerance = 1024 / 48000 + 1e-6 if layout in NOMINAL else 1e-6
    for ref in refs:
        init, seg = read_ref(blobs, ref)
        assert ref.media_offset is not None
        archive = earliest_pts(init, seg) / media_timescale(init) + ref.media_offset
        assert archive == pytest.approx(ref.start, abs=tolerance), ref


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dash")
    for layout in LAYOUTS:
        write_dash(root / layout, SPEC, layout=layout)
    return root


def resolve_file(
    manifest: Path, start_ms: int, duration_ms: int, now_ms: int | None = None
) -> Resolution:
    request = range_request(start_ms, None, duration_ms)
    return resolve(Blobs(), str(manifest), request, now_ms=now_ms)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_resolves_to_the_files_on_disk(archives: Path, layout: str) -> None:
    manifest = archives / layout / "stream.mpd"
    res = resolve_file(manifest, EPOCH, 6000)
    assert res.clock == "wall" and res.epoch_ms_at_zero == EPOCH
    assert (res.video_track.width, res.video_track.height) == (320, 180)  # not the 160x90 rep
    assert res.audio_track is not None and res.audio_track.sample_rate == 48000
    assert [round(r.start, 6) for r in res.video] == [0.0, 2.0, 4.0]
    assert res.live_edge == pytest.approx(6.0) and res.missing == 0.0 and res.gaps == ()
    blobs = Blobs()
    if layout == "segment-base":
        # One file per representation: the byte ranges tile it after init + sidx.
        data = (archives / layout / "vhigh.mp4").read_bytes()
        assert {r.url for r in res.video} == {str(archives / layout / "vhigh.mp4")}
        ranges = [r.byte_range for r in res.video]
        spans = [(b.offset, b.length) for b in ranges if b is not None]
        assert len(spans) == len(ranges)
        assert sum(length for _, length in spans) == len(data) - spans[0][0]
        for (a_off, a_len), (b_off, _) in itertools.pairwise(spans):
            assert a_off + a_len == b_off
    else:
        on_disk = sorted(
            (p for p in (archives / layout / "vhigh").iterdir() if p.name != "init.mp4"),
            key=lambda p: int("".join(c for c in p.stem if c.isdigit())),
        )
        assert [r.url for r in res.video] == [str(p) for p in on_disk]
        assert len(res.audio) == len(list((archives / layout / "audio").glob("*.m4s")))
    check_against_media(blobs, res.video, layout)
    check_against_media(blobs, res.audio, layout)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_two_periods_boundary_inside_the_clip(tmp_path: Path, layout: str) -> None:
    spec = ArchiveSpec(seconds=8.0)
    manifest = write_dash(tmp_path, spec, layout=layout, periods=2)
    res = resolve_file(manifest, EPOCH + 3000, 2000)  # 3 .. 5, the boundary is at 4 s
    assert [round(r.start, 6) for r in res.video] == [2.0, 4.0]
    assert [r.discontinuity for r in res.video] == [False, True]
    assert "period1" in res.video[1].url and "period0" in res.video[0].url
    assert res.audio[-1].discontinuity and res.gaps == ()
    check_against_media(Blobs(), res.video, layout)
    check_against_media(Blobs(), res.audio, layout)


def test_gap_in_a_timeline_archive(tmp_path: Path) -> None:
    manifest = write_dash(tmp_path, SPEC, layout="timeline-time", gap=(2.0, 4.0))
    res = resolve_file(manifest, EPOCH + 1000, 4000)
    assert [round(r.start, 6) for r in res.video] == [0.0, 4.0]
    assert [(round(g.start, 6), round(g.end, 6), g.reason) for g in res.gaps] == [(2.0, 4.0, "gap")]
    assert all(Path(r.url).is_file() for r in res.video + res.audio)


def test_gap_in_a_duration_archive_lists_the_missing_file(tmp_path: Path) -> None:
    # @duration numbering cannot say a segment is missing: the resolution lists it and the
    # media work finds the file absent (and counts it as missing).
    manifest = write_dash(tmp_path, SPEC, layout="template-duration", gap=(2.0, 4.0))
    res = resolve_file(manifest, EPOCH + 1000, 4000)
    assert [Path(r.url).is_file() for r in res.video] == [True, False, True]


@pytest.mark.parametrize("layout", ["timeline-number", "template-duration"])
def test_dynamic_archive_live_edge(tmp_path: Path, layout: str) -> None:
    manifest = write_dash(tmp_path, SPEC, layout=layout, dynamic=True)
    now = EPOCH + 6500  # half a second after the last segment completed
    res = resolve_file(manifest, EPOCH + 5000, 4000, now_ms=now)
    assert res.is_live and res.live_edge == pytest.approx(6.0)
    assert [round(r.start, 6) for r in res.video] == [4.0]
    assert res.missing_after_edge == pytest.approx(3.0) and res.gaps == ()
    later = resolve_file(manifest, EPOCH + 7000, 1000, now_ms=now)
    assert later.is_live and later.video == () and later.missing_after_edge == 1.0


@pytest.mark.parametrize("layout", ["timeline-time", "segment-base"])
def test_ntsc_rate_archive(tmp_path: Path, layout: str) -> None:
    spec = ArchiveSpec(seconds=6.0, fps=Fraction(30000, 1001), gop_frames=60)
    manifest = write_dash(tmp_path, spec, layout=layout)
    frame = 100  # shown at 3.3366 s, inside the second 60-frame segment (2.002 .. 4.004 s)
    res = resolve_file(manifest, spec.start_pos_ms(frame), 500)  # ends at 3.837 s
    assert [round(r.start, 6) for r in res.video] == [round(60 * 1001 / 30000, 6)]
    assert res.video_track.frame_rate == pytest.approx(30000 / 1001)
    check_against_media(Blobs(), res.video, layout)
    check_against_media(Blobs(), res.audio, layout)


def test_growing_archive_edge_moves_and_the_range_fills_up(tmp_path: Path) -> None:
    archive = GrowingArchive(tmp_path, SPEC, kind="dash")
    archive.publish_until(2.0)
    # The first audio segment runs to 2.0053 s (AAC frame grid), so at 2.0 no audio is
    # published yet: nothing can be delivered with sound, the edge is still at 0.
    res = resolve_file(archive.manifest, EPOCH + 1000, 4000)  # 1 .. 5
    assert res.is_live and res.live_edge == pytest.approx(0.0)
    archive.publish_until(2.1)
    res = resolve_file(archive.manifest, EPOCH + 1000, 4000)
    assert res.is_live and res.live_edge == pytest.approx(2.0)
    assert [round(r.start, 6) for r in res.video] == [0.0]
    assert res.missing_after_edge == pytest.approx(3.0) and res.gaps == ()
    archive.publish_until(4.1)
    res = resolve_file(archive.manifest, EPOCH + 1000, 4000)
    assert res.live_edge == pytest.approx(4.0) and res.missing == pytest.approx(1.0)
    archive.finish()
    res = resolve_file(archive.manifest, EPOCH + 1000, 4000)
    assert not res.is_live and res.missing == 0.0
    assert [round(r.start, 6) for r in res.video] == [0.0, 2.0, 4.0]
    assert all(Path(r.url).is_file() for r in res.video + res.audio)
