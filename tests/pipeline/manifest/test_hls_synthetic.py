"""Real HLS archives from pipeline.synthetic, resolved and checked against the files on disk.

Each segment's first decoded frame carries its source index as a barcode, so the check is
that frame k sits at archive time k/fps: the resolver's timeline matches the media.
"""

from __future__ import annotations

import io
import os
from fractions import Fraction
from pathlib import Path

import av
import pytest

from pipeline.manifest import range_request, resolve
from pipeline.model import Gap, Resolution, SegmentRef
from pipeline.storage import Blobs
from pipeline.synthetic import ArchiveSpec, read_frame_index, write_hls
from pipeline.synthetic.growing import GrowingArchive

SPEC = ArchiveSpec(seconds=6.0)
EPOCH = 1_562_253_600_000
assert SPEC.epoch_ms == EPOCH


def _resolve(manifest: Path, start_s: float, dur_ms: int, start_time: str | None = None):
    pos = EPOCH + round(start_s * 1000) if start_time is None else None
    return resolve(Blobs(), str(manifest), range_request(pos, start_time, dur_ms))


def _segment_bytes(seg: SegmentRef) -> bytes:
    blobs = Blobs()
    data = blobs.read(seg.url, seg.byte_range)
    if seg.init_url is not None:
        data = blobs.read(seg.init_url, seg.init_range) + data
    return data


def _first_frame_and_count(seg: SegmentRef) -> tuple[int | None, int]:
    with av.open(io.BytesIO(_segment_bytes(seg)), mode="r") as container:
        frames = list(container.decode(video=0))
    return read_frame_index(frames[0]), len(frames)


def _check_against_disk(res: Resolution, fps: Fraction = SPEC.fps) -> None:
    """Every listed file exists; each segment starts with the frame its start time names."""
    assert res.video, "expected segments"
    for seg in res.video:
        assert os.path.isfile(seg.url), seg.url
        assert seg.init_url is None or os.path.isfile(seg.init_url)
        first, count = _first_frame_and_count(seg)
        assert first == round(seg.start * fps), (seg.url, seg.start)
        assert count == round(seg.duration * fps), seg.url
    ends = [s.start + s.duration for s in res.video]
    assert res.video[0].start <= res.start < ends[0] or res.gaps
    assert res.video[-1].start < res.end <= ends[-1] or res.gaps or res.missing_after_edge
    for seg in res.audio:
        assert os.path.isfile(seg.url) and seg.init_url and os.path.isfile(seg.init_url)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hls")


def test_ts_master_picks_the_high_variant_with_muxed_audio(root: Path) -> None:
    manifest = write_hls(root / "ts", SPEC, container="ts")
    res = _resolve(manifest, 2.5, 2000)
    assert [Path(s.url).relative_to(root / "ts").as_posix() for s in res.video] == [
        "vhigh/seg1.ts",
        "vhigh/seg2.ts",
    ]
    assert (res.clock, res.epoch_ms_at_zero, res.is_live) == ("wall", EPOCH, False)
    assert (res.video_track.width, res.video_track.height) == (SPEC.width, SPEC.height)
    assert res.video_track.codec.startswith("avc1") and res.video_track.frame_rate == 25.0
    assert res.audio_muxed and res.audio == ()
    assert res.audio_track is not None and res.audio_track.codec == "mp4a.40.2"
    assert all(s.init_url is None and s.media_offset is None for s in res.video)
    assert res.live_edge == pytest.approx(SPEC.seconds)
    _check_against_disk(res)
    with av.open(res.video[0].url, mode="r") as container:  # audio really is inside the TS segments
        assert [s.type for s in container.streams] == ["video", "audio"]


def test_fmp4_master_with_separate_audio_rendition(root: Path) -> None:
    manifest = write_hls(root / "fmp4", SPEC, container="fmp4")
    res = _resolve(manifest, 0.0, 6000)
    assert len(res.video) == 3 and all("/vhigh/" in s.url for s in res.video)
    assert {s.init_url for s in res.video} == {str(root / "fmp4/vhigh/init.mp4")}
    assert not res.audio_muxed and len(res.audio) == 3
    # the audio playlist is dated 21 ms early (AAC priming); it keeps that on the video clock
    assert res.audio[0].start == pytest.approx(-0.021, abs=0.002)
    assert res.audio_track is not None and res.audio_track.channels == 1
    _check_against_disk(res)


@pytest.mark.parametrize("container", ["ts", "fmp4"])
def test_discontinuity_restarts_timestamps_but_not_the_timeline(root: Path, container) -> None:
    manifest = write_hls(root / f"disc-{container}", SPEC, container=container, discontinuity_at=2)
    res = _resolve(manifest, 1.0, 4000)
    assert [s.discontinuity for s in res.video] == [False, True, False]
    assert [s.start for s in res.video] == pytest.approx([0.0, 2.0, 4.0])
    if container == "fmp4":  # a new encoder, a new initialization section
        assert res.video[0].init_url != res.video[1].init_url == res.video[2].init_url
    _check_against_disk(res)


@pytest.mark.parametrize("container", ["ts", "fmp4"])
def test_gap_is_reported_and_its_missing_files_are_not_listed(root: Path, container) -> None:
    out = root / f"gap-{container}"
    manifest = write_hls(out, SPEC, container=container, gap=(2.0, 4.0))
    res = _resolve(manifest, 1.0, 4000)
    assert res.gaps == (Gap(2.0, 4.0, "gap"),)
    assert [Path(s.url).name for s in res.video] == [
        f"seg0.{_ext(container)}",
        f"seg2.{_ext(container)}",
    ]
    assert not (out / "vhigh" / f"seg1.{_ext(container)}").exists()
    assert res.missing == pytest.approx(2.0)
    _check_against_disk(res)


def _ext(container: str) -> str:
    return "ts" if container == "ts" else "m4s"


def test_live_playlist_and_a_range_past_its_edge(root: Path) -> None:
    manifest = write_hls(root / "live", SPEC, container="ts", live=True)
    res = _resolve(manifest, 5.0, 4000)
    assert res.is_live and res.live_edge == pytest.approx(6.0)
    assert res.missing_after_edge == pytest.approx(3.0)
    _check_against_disk(res)
    waiting = _resolve(manifest, 8.0, 2000)
    assert waiting.video == () and waiting.missing_after_edge == pytest.approx(2.0)


def test_growing_archive_edge_moves_forward(root: Path) -> None:
    archive = GrowingArchive(root / "growing", SPEC, kind="hls", container="ts")
    archive.publish_until(2.0)
    early = _resolve(archive.manifest, 1.0, 4000)
    assert early.is_live and early.live_edge == pytest.approx(2.0) and len(early.video) == 1
    archive.publish_until(6.0)
    later = _resolve(archive.manifest, 1.0, 4000)
    assert later.live_edge == pytest.approx(6.0) and len(later.video) == 3
    assert later.missing_after_edge == 0.0
    _check_against_disk(later)


def test_media_playlist_without_wall_clock_uses_start_time(root: Path) -> None:
    manifest = write_hls(root / "plain", SPEC, container="ts", master=False, pdt=False)
    res = _resolve(manifest, 0.0, 1000, start_time="00:00:04.5")
    assert (res.clock, res.epoch_ms_at_zero, res.start) == ("relative", None, 4.5)
    assert [Path(s.url).name for s in res.video] == ["seg2.ts"]
    _check_against_disk(res)


def test_2997_fps_segments_line_up(root: Path) -> None:
    spec = ArchiveSpec(seconds=4.0, fps=Fraction(30000, 1001), gop_frames=30, audio=False)
    manifest = write_hls(root / "ntsc", spec, container="fmp4")
    res = _resolve(manifest, 0.5, 3000)
    assert not res.audio_muxed and res.audio_track is None and res.audio == ()
    _check_against_disk(res, spec.fps)
