"""export_clip on generated archives: frame identity, counts, sync, holes, containers."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest

from pipeline.errors import InvalidRequest, MediaError
from pipeline.media import ClipResult, export_clip
from pipeline.storage import Blobs
from pipeline.synthetic import ArchiveSpec
from tests.fixtures.media import MakeArchive, archive_spec
from tests.pipeline.media.helpers import AUDIO_FRAME, beep_offsets, decode, resolve_frames

FIRST, COUNT = 37, 75  # mid-GOP to mid-GOP: head and tail partial GOPs, one whole GOP


def cut(
    manifest: Path,
    tmp_path: Path,
    export_type: int,
    first: int = FIRST,
    count: int = COUNT,
    suffix: str = "mp4",
) -> ClipResult:
    spec = archive_spec(manifest)
    res = resolve_frames(manifest, spec, first, count)
    return export_clip(
        Blobs(), res, tmp_path / f"clip{export_type}.{suffix}", export_type=export_type
    )


def check_frames(result: ClipResult, expected: list[int], fps: Fraction) -> None:
    d = decode(result.path)
    assert d.indices == expected
    assert result.frame_count == len(expected)
    # Continuous output timestamps, one frame duration apart, whatever was skipped.
    steps = {round((b - a) * float(fps), 3) for a, b in zip(d.times, d.times[1:], strict=False)}
    assert steps == {1.0}


def check_audio(result: ClipResult, spec: ArchiveSpec, frames: int) -> None:
    d = decode(result.path)
    assert d.audio_span is not None
    video = frames / float(spec.fps)
    audio = d.audio_span[1] - d.audio_span[0]
    assert abs(audio - video) <= AUDIO_FRAME + 1e-3
    played = decode(result.path, ignore_editlist=False)
    offsets = beep_offsets(played, spec.beep_every)
    assert offsets, "no beep heard inside the clip"
    assert max(offsets) <= AUDIO_FRAME


@pytest.mark.parametrize("suffix", ["mp4", "ts"])
@pytest.mark.parametrize("kind", ["dash", "hls"])
@pytest.mark.parametrize("export_type", [0, 1, 2])
def test_exact_frames_and_sync(
    make_archive: MakeArchive, tmp_path: Path, export_type: int, kind: str, suffix: str
) -> None:
    manifest = make_archive(kind)
    spec = archive_spec(manifest)
    result = cut(manifest, tmp_path, export_type, suffix=suffix)
    check_frames(result, list(range(FIRST, FIRST + COUNT)), spec.fps)
    check_audio(result, spec, COUNT)
    assert result.container == ("mpegts" if suffix == "ts" else "mp4")
    assert result.video_codec == ("hevc" if export_type == 2 else "h264")
    assert result.audio_codec == "aac"
    assert (result.width, result.height) == (spec.width, spec.height)
    assert result.first_frame_time == pytest.approx(FIRST / float(spec.fps), abs=1e-6)
    assert result.delivered_ms == 3000 and result.missing_ms == 0 and result.gaps == ()
    assert abs(result.duration - 3.0) <= AUDIO_FRAME + 1e-3
    assert result.size == result.path.stat().st_size and len(result.sha256) == 64


def test_smart_cut_copies_the_whole_gops(make_archive: MakeArchive, tmp_path: Path) -> None:
    result = cut(make_archive("dash"), tmp_path, 0)
    # Frames 37-49 (head) and 100-111 (tail) re-encoded; the GOP 50-99 copied.
    assert (result.copied_frames, result.reencoded_frames) == (50, 25)


def test_smart_cut_on_gop_boundaries_is_a_pure_copy(
    make_archive: MakeArchive, tmp_path: Path
) -> None:
    manifest = make_archive("dash")
    result = cut(manifest, tmp_path, 0, first=50, count=50)
    assert (result.copied_frames, result.reencoded_frames) == (50, 0)
    check_frames(result, list(range(50, 100)), Fraction(25))


def test_smart_cut_inside_one_gop(make_archive: MakeArchive, tmp_path: Path) -> None:
    result = cut(make_archive("dash"), tmp_path, 0, first=60, count=20)
    assert (result.copied_frames, result.reencoded_frames) == (0, 20)
    check_frames(result, list(range(60, 80)), Fraction(25))


def test_smart_cut_keeps_source_parameters(make_archive: MakeArchive, tmp_path: Path) -> None:
    manifest = make_archive("dash")
    result = cut(manifest, tmp_path, 0)
    with av.open(str(result.path)) as c:
        s = c.streams.video[0]
        assert s.codec_tag == "avc3"  # parameter sets travel in-band
        assert s.codec_context.pix_fmt == "yuv420p"


@pytest.mark.parametrize("export_type", [0, 1, 2])
def test_hevc_source(make_archive: MakeArchive, tmp_path: Path, export_type: int) -> None:
    manifest = make_archive("dash", codec="hevc")
    result = cut(manifest, tmp_path, export_type)
    check_frames(result, list(range(FIRST, FIRST + COUNT)), Fraction(25))
    check_audio(result, archive_spec(manifest), COUNT)
    assert result.video_codec == ("h264" if export_type == 1 else "hevc")
    if export_type == 0:
        assert result.copied_frames == 50


def test_h265_output_is_tagged_hvc1(make_archive: MakeArchive, tmp_path: Path) -> None:
    result = cut(make_archive("dash"), tmp_path, 2)
    with av.open(str(result.path)) as c:
        assert c.streams.video[0].codec_tag == "hvc1"


# Copied: 50-98; frame 99 is a leading picture of keyframe 100, so it belongs to the tail's
# GOP and is re-encoded with frames 100-111.  The H.264 I picture 50 is copied as an IDR
# (see h264.py); HEVC CRA pictures follow an end of sequence as they are.
@pytest.mark.parametrize("codec", ["h264", "hevc"])
@pytest.mark.parametrize("kind", ["dash", "hls"])
def test_open_gop_smart_cut(
    make_archive: MakeArchive, tmp_path: Path, kind: str, codec: str
) -> None:
    manifest = make_archive(kind, open_gop=True, codec=codec)
    result = cut(manifest, tmp_path, 0)
    check_frames(result, list(range(FIRST, FIRST + COUNT)), Fraction(25))
    check_audio(result, archive_spec(manifest), COUNT)
    assert result.copied_frames == 49


@pytest.mark.parametrize("export_type", [0, 1, 2])
def test_ntsc_frame_rate(make_archive: MakeArchive, tmp_path: Path, export_type: int) -> None:
    fps = Fraction(30000, 1001)
    manifest = make_archive("dash", fps=fps, gop_frames=60)
    result = cut(manifest, tmp_path, export_type, first=41, count=80)
    check_frames(result, list(range(41, 121)), fps)
    check_audio(result, archive_spec(manifest), 80)


@pytest.mark.parametrize("export_type", [0, 1, 2])
def test_period_boundary_inside_clip(
    make_archive: MakeArchive, tmp_path: Path, export_type: int
) -> None:
    manifest = make_archive("dash", periods=2)
    result = cut(manifest, tmp_path, export_type)
    check_frames(result, list(range(FIRST, FIRST + COUNT)), Fraction(25))
    check_audio(result, archive_spec(manifest), COUNT)


@pytest.mark.parametrize("export_type", [0, 1])
def test_hls_discontinuity_inside_clip(
    make_archive: MakeArchive, tmp_path: Path, export_type: int
) -> None:
    manifest = make_archive("hls", discontinuity_at=2.0)
    result = cut(manifest, tmp_path, export_type, suffix="ts")
    check_frames(result, list(range(FIRST, FIRST + COUNT)), Fraction(25))
    check_audio(result, archive_spec(manifest), COUNT)


SKIPPED = list(range(FIRST, 50)) + list(range(100, FIRST + COUNT))  # 2-4 s is not there


@pytest.mark.parametrize("export_type", [0, 1, 2])
@pytest.mark.parametrize("kind", ["dash", "hls"])
def test_gap_inside_clip(
    make_archive: MakeArchive, tmp_path: Path, kind: str, export_type: int
) -> None:
    manifest = make_archive(kind, gap=(2.0, 4.0))
    result = cut(manifest, tmp_path, export_type)
    check_frames(result, SKIPPED, Fraction(25))
    check_audio(result, archive_spec(manifest), len(SKIPPED))
    assert [(g.start, g.end) for g in result.gaps] == [(2.0, 4.0)]
    assert result.missing_ms == 2000 and result.delivered_ms == 1000


def _damaged_archive(make_archive: MakeArchive, tmp_path: Path, how: str) -> Path:
    """A private copy of the default DASH archive with its middle video segment damaged."""
    import shutil

    src = make_archive("dash").parent
    dst = tmp_path / "archive"
    shutil.copytree(src, dst)
    segments = sorted((dst / "vhigh").glob("t*.m4s"), key=lambda p: int(p.stem[1:]))
    middle = segments[1]
    if how == "missing":
        middle.unlink()
    elif how == "truncated":
        middle.write_bytes(middle.read_bytes()[: middle.stat().st_size // 2])
    else:
        middle.write_bytes(b"\x00" * 64 + b"garbage" * 100)
    return dst / "stream.mpd"


@pytest.mark.parametrize("export_type", [0, 1])
@pytest.mark.parametrize(
    ("how", "reason"), [("missing", "missing"), ("truncated", "corrupt"), ("garbage", "corrupt")]
)
def test_damaged_segment_inside_clip_is_a_gap(
    make_archive: MakeArchive, tmp_path: Path, how: str, reason: str, export_type: int
) -> None:
    manifest = _damaged_archive(make_archive, tmp_path, how)
    spec = ArchiveSpec()
    res = resolve_frames(manifest, spec, FIRST, COUNT)
    result = export_clip(Blobs(), res, tmp_path / "clip.mp4", export_type=export_type)
    check_frames(result, SKIPPED, spec.fps)
    check_audio(result, spec, len(SKIPPED))
    assert [(g.start, g.end, g.reason) for g in result.gaps] == [(2.0, 4.0, reason)]
    assert result.missing_ms == 2000


def test_nothing_decodable_names_the_segment(make_archive: MakeArchive, tmp_path: Path) -> None:
    manifest = _damaged_archive(make_archive, tmp_path, "garbage")
    res = resolve_frames(manifest, ArchiveSpec(), 55, 20)  # only the damaged segment
    with pytest.raises(MediaError) as err:
        export_clip(Blobs(), res, tmp_path / "clip.mp4", export_type=0)
    assert err.value.obj is not None and err.value.obj.endswith(".m4s")
    assert not (tmp_path / "clip.mp4").exists()
    assert not (tmp_path / "clip.mp4.part").exists()


def test_bad_export_type(make_archive: MakeArchive, tmp_path: Path) -> None:
    manifest = make_archive("dash")
    res = resolve_frames(manifest, archive_spec(manifest), FIRST, COUNT)
    with pytest.raises(InvalidRequest) as err:
        export_clip(Blobs(), res, tmp_path / "x.mp4", export_type=3)
    assert err.value.field == "export_type"


def test_progress_is_monotonic_and_ends_at_one(make_archive: MakeArchive, tmp_path: Path) -> None:
    manifest = make_archive("dash")
    res = resolve_frames(manifest, archive_spec(manifest), 10, 130)
    seen: list[float] = []
    export_clip(Blobs(), res, tmp_path / "p.mp4", export_type=0, progress=seen.append)
    assert len(seen) >= len(res.video)
    assert seen == sorted(seen) and seen[-1] == 1.0 and seen[0] > 0


def test_mp4_is_faststart(make_archive: MakeArchive, tmp_path: Path) -> None:
    data = cut(make_archive("dash"), tmp_path, 0).path.read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat")


def test_to_dict_is_json_ready(make_archive: MakeArchive, tmp_path: Path) -> None:
    import json

    manifest = make_archive("dash", gap=(2.0, 4.0))
    d = cut(manifest, tmp_path, 1).to_dict()
    assert json.loads(json.dumps(d))["gaps"][0]["reason"] == "gap"
    assert isinstance(d["path"], str)


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("dash", {"layout": "segment-base"}),  # one file, byte ranges from the sidx
        ("dash", {"layout": "template-duration"}),
        ("dash", {"layout": "segment-list"}),
        ("dash", {"gop_frames": 25}),  # two GOPs per segment
        ("hls", {"container": "fmp4"}),  # EXT-X-MAP video, separate audio rendition
    ],
)
def test_other_layouts_smart_cut(
    make_archive: MakeArchive, tmp_path: Path, kind: str, options: dict[str, object]
) -> None:
    manifest = make_archive(kind, **options)
    result = cut(manifest, tmp_path, 0)
    check_frames(result, list(range(FIRST, FIRST + COUNT)), Fraction(25))
    check_audio(result, archive_spec(manifest), COUNT)
    assert result.copied_frames == 50


@pytest.mark.parametrize(("codec", "suffix"), [("h264", "mp4"), ("h264", "ts"), ("hevc", "mp4")])
def test_smart_cut_copies_the_tail_without_b_frames(
    make_archive: MakeArchive, tmp_path: Path, codec: str, suffix: str
) -> None:
    # Without B-frames the tail's frames 100-111 are the first packets of GOP 100 in decode
    # order: they are copied, and only the head (37-49) is re-encoded.
    manifest = make_archive("dash", bframes=0, codec=codec)
    result = cut(manifest, tmp_path, 0, suffix=suffix)
    check_frames(result, list(range(FIRST, FIRST + COUNT)), Fraction(25))
    check_audio(result, archive_spec(manifest), COUNT)
    assert (result.copied_frames, result.reencoded_frames) == (62, 13)


def test_range_past_the_end_reports_the_missing_part(
    make_archive: MakeArchive, tmp_path: Path
) -> None:
    manifest = make_archive("dash")
    result = cut(manifest, tmp_path, 0, first=130, count=40)  # the archive ends at 150
    check_frames(result, list(range(130, 150)), Fraction(25))
    assert result.missing_ms == 800 and result.delivered_ms == 800
    assert [g.reason for g in result.gaps] == ["live_edge"]


@pytest.mark.parametrize("export_type", [0, 1, 2])
def test_mp4_timestamps_start_at_zero_without_edit_lists(
    make_archive: MakeArchive, tmp_path: Path, export_type: int
) -> None:
    result = cut(make_archive("dash"), tmp_path, export_type)
    assert decode(result.path).times[0] == 0.0
