"""Clips of imperfect archives, and what a result promises.

Growing archives cut at the live edge, damaged HLS segments inside a clip, damaged audio,
the result's fields against the file itself, progress for the re-encoding types, sync on
flavours not checked elsewhere, and memory that does not grow with the clip's length.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import av
import pytest

from pipeline.errors import ExportError
from pipeline.media import ClipResult, export_clip
from pipeline.storage import Blobs
from pipeline.synthetic import ArchiveSpec, GrowingArchive, write_dash
from tests.fixtures.media import MakeArchive, archive_spec
from tests.pipeline.media.helpers import AUDIO_FRAME, beep_offsets, decode, resolve_frames

FIRST, COUNT = 37, 75
ALL = list(range(FIRST, FIRST + COUNT))
SKIPPED = list(range(FIRST, 50)) + list(range(100, FIRST + COUNT))  # 2-4 s absent


def cut(
    manifest: Path,
    tmp_path: Path,
    export_type: int = 0,
    *,
    first: int = FIRST,
    count: int = COUNT,
    suffix: str = "mp4",
    spec: ArchiveSpec | None = None,
) -> ClipResult:
    spec = spec or archive_spec(manifest)
    res = resolve_frames(manifest, spec, first, count)
    out = tmp_path / f"clip{export_type}.{suffix}"
    return export_clip(Blobs(), res, out, export_type=export_type)


def check_sync(result: ClipResult, spec: ArchiveSpec, frames: int) -> None:
    d = decode(result.path)
    assert d.audio_span is not None
    assert abs((d.audio_span[1] - d.audio_span[0]) - frames / float(spec.fps)) <= AUDIO_FRAME + 1e-3
    offsets = beep_offsets(decode(result.path, ignore_editlist=False), spec.beep_every)
    assert offsets, "no beep heard inside the clip"
    assert max(offsets) <= AUDIO_FRAME


@pytest.mark.parametrize(
    ("kind", "container", "export_type"),
    [
        ("dash", "ts", 0),
        ("dash", "ts", 1),
        ("hls", "ts", 0),
        ("hls", "ts", 1),
        ("hls", "fmp4", 0),
        ("hls", "fmp4", 1),
    ],
)
def test_growing_archive_cut_at_the_live_edge_then_complete(
    tmp_path: Path, kind: str, container: str, export_type: int
) -> None:
    # Segments appear once complete; AAC segments (94 frames = 2.0053 s) end just after the
    # video's 2 s ones, so with video published to 4 s the audio is published to 2.0053 s.
    spec = ArchiveSpec()
    archive = GrowingArchive(tmp_path / "rec", spec, kind=kind, container=container)
    archive.publish_until(4.0)
    res = resolve_frames(archive.manifest, spec, 25, 100)  # 1 s .. 5 s
    assert res.is_live and res.live_edge is not None
    edge = res.live_edge
    last = math.ceil(edge * 25 - 1e-6)  # first frame not shown before the edge
    early = export_clip(Blobs(), res, tmp_path / "early.mp4", export_type=export_type)
    assert decode(early.path).indices == list(range(25, last))
    assert early.missing_ms == round((5.0 - edge) * 1000)
    assert early.delivered_ms == 4000 - early.missing_ms
    assert [(g.end, g.reason) for g in early.gaps] == [(5.0, "live_edge")]
    check_sync(early, spec, last - 25)

    archive.publish_until(6.0)
    res = resolve_frames(archive.manifest, spec, 25, 100)
    late = export_clip(Blobs(), res, tmp_path / "late.mp4", export_type=export_type)
    assert decode(late.path).indices == list(range(25, 125))
    assert (late.delivered_ms, late.missing_ms, late.gaps) == (4000, 0, ())
    check_sync(late, spec, 100)


def _damaged_hls(make_archive: MakeArchive, tmp_path: Path, container: str, how: str) -> Path:
    manifest = make_archive("hls", container=container)
    dst = tmp_path / "archive"
    shutil.copytree(manifest.parent, dst)
    middle = dst / "vhigh" / ("seg1.ts" if container == "ts" else "seg1.m4s")
    if how == "missing":
        middle.unlink()
    elif how == "truncated":
        middle.write_bytes(middle.read_bytes()[: middle.stat().st_size // 2])
    else:
        middle.write_bytes(b"\x47" + b"garbage" * 200)  # a TS sync byte, then nonsense
    return dst / manifest.name


@pytest.mark.parametrize(
    ("container", "how", "reason"),
    [
        ("ts", "missing", "missing"),
        ("ts", "truncated", "corrupt"),
        ("ts", "garbage", "corrupt"),
        ("fmp4", "missing", "missing"),
        ("fmp4", "truncated", "corrupt"),
        ("fmp4", "garbage", "corrupt"),
    ],
)
def test_damaged_hls_segment_inside_clip_is_a_gap(
    make_archive: MakeArchive, tmp_path: Path, container: str, how: str, reason: str
) -> None:
    manifest = _damaged_hls(make_archive, tmp_path, container, how)
    spec = ArchiveSpec()
    result = cut(manifest, tmp_path, 0, spec=spec)
    d = decode(result.path)
    # Whatever part of a damaged segment is used, every frame is a clean source frame in
    # order, timestamps stay continuous, and what is absent is reported as a hole.
    assert None not in d.indices
    assert d.indices == sorted(d.indices, key=lambda i: i or 0) and set(d.indices) <= set(ALL)
    steps = {round((b - a) * 25, 3) for a, b in zip(d.times, d.times[1:], strict=False)}
    assert steps == {1.0}
    absent_ms = (COUNT - len(d.indices)) * 40
    assert result.missing_ms == absent_ms and result.delivered_ms == 3000 - absent_ms
    assert [g.reason for g in result.gaps] == [reason]
    if how != "truncated" or container != "ts":
        assert d.indices == SKIPPED
        assert [(g.start, g.end) for g in result.gaps] == [(2.0, 4.0)]
    check_sync(result, spec, len(d.indices))


@pytest.mark.parametrize("fraction", [0.3, 0.62, 0.85])
@pytest.mark.parametrize(("export_type", "suffix"), [(0, "mp4"), (0, "ts"), (1, "mp4")])
def test_truncated_ts_segment_keeps_its_clean_frames(
    make_archive: MakeArchive, tmp_path: Path, fraction: float, export_type: int, suffix: str
) -> None:
    manifest = make_archive("hls", container="ts")
    dst = tmp_path / "archive"
    shutil.copytree(manifest.parent, dst)
    middle = dst / "vhigh" / "seg1.ts"
    middle.write_bytes(middle.read_bytes()[: int(middle.stat().st_size * fraction)])
    spec = ArchiveSpec()
    result = cut(dst / manifest.name, tmp_path, export_type, suffix=suffix, spec=spec)
    d = decode(result.path)
    # The segment's frames up to the first lost one, then the next segment: no broken
    # frame, continuous timestamps, and the lost part reported as one corrupt hole.
    kept = [i for i in d.indices if i is not None and 50 <= i < 100]
    assert kept and d.indices == list(range(FIRST, kept[-1] + 1)) + list(range(100, 112))
    steps = {round((b - a) * 25, 3) for a, b in zip(d.times, d.times[1:], strict=False)}
    assert steps == {1.0}
    lost = (kept[-1] + 1) / 25
    assert [(g.reason, g.end) for g in result.gaps] == [("corrupt", 4.0)]
    assert result.gaps[0].start == pytest.approx(lost, abs=1e-6)
    assert result.missing_ms == (99 - kept[-1]) * 40
    check_sync(result, spec, len(d.indices))


@pytest.mark.parametrize("how", ["missing", "garbage"])
def test_damaged_audio_segment_never_fails_the_clip(
    make_archive: MakeArchive, tmp_path: Path, how: str
) -> None:
    src = make_archive("dash").parent
    dst = tmp_path / "archive"
    shutil.copytree(src, dst)
    audio = sorted((dst / "audio").glob("t*.m4s"), key=lambda p: int(p.stem[1:]))[1]
    if how == "missing":
        audio.unlink()
    else:
        audio.write_bytes(b"\x00" * 64 + b"garbage" * 100)
    result = cut(dst / "stream.mpd", tmp_path, 0, spec=ArchiveSpec())
    assert decode(result.path).indices == ALL
    assert result.audio_codec == "aac"


@pytest.mark.parametrize(("suffix", "export_type"), [("mp4", 0), ("ts", 0), ("mp4", 1), ("ts", 2)])
def test_result_fields_describe_the_file(
    make_archive: MakeArchive, tmp_path: Path, suffix: str, export_type: int
) -> None:
    manifest = make_archive("hls", container="fmp4")
    spec = archive_spec(manifest)
    result = cut(manifest, tmp_path, export_type, suffix=suffix)
    data = result.path.read_bytes()
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.size == len(data)
    d = decode(result.path)
    assert result.frame_count == len(d.indices) == COUNT
    with av.open(str(result.path)) as c:
        v = c.streams.video[0]
        assert (result.width, result.height) == (v.codec_context.width, v.codec_context.height)
        assert result.video_codec == v.codec_context.name
        assert result.audio_codec == c.streams.audio[0].codec_context.name
        # Taken from what was written, it is what a probe of the file finds.
        assert c.duration is not None
        assert result.duration == pytest.approx(c.duration / av.time_base, abs=1e-3)
    assert abs(result.duration - COUNT / float(spec.fps)) <= AUDIO_FRAME + 1e-3
    assert json.loads(json.dumps(result.to_dict()))["sha256"] == result.sha256


@pytest.mark.parametrize("export_type", [1, 2])
def test_progress_for_reencoding_types(
    make_archive: MakeArchive, tmp_path: Path, export_type: int
) -> None:
    manifest = make_archive("hls", container="ts")
    res = resolve_frames(manifest, archive_spec(manifest), 10, 130)
    seen: list[float] = []
    export_clip(Blobs(), res, tmp_path / "p.ts", export_type=export_type, progress=seen.append)
    assert len(seen) >= len(res.video) and seen == sorted(seen)
    assert seen[0] > 0 and seen[-1] == 1.0 and seen.count(1.0) == 1


@pytest.mark.parametrize(
    ("kind", "opts", "first", "count", "suffix"),
    [
        ("dash", {"layout": "timeline-number"}, FIRST, COUNT, "mp4"),
        ("dash", {"periods": 3}, 37, 100, "mp4"),  # two Period boundaries inside
        ("hls", {"fps": Fraction(30000, 1001), "gop_frames": 60}, 41, 80, "ts"),
        ("hls", {"container": "fmp4", "discontinuity_at": 2.0}, FIRST, COUNT, "mp4"),
        ("hls", {"codec": "hevc", "bframes": 4}, FIRST, COUNT, "ts"),
    ],
)
@pytest.mark.parametrize("export_type", [0, 2])
def test_frames_and_sync_on_more_flavours(
    make_archive: MakeArchive,
    tmp_path: Path,
    kind: str,
    opts: dict[str, object],
    first: int,
    count: int,
    suffix: str,
    export_type: int,
) -> None:
    manifest = make_archive(kind, **opts)
    spec = archive_spec(manifest)
    result = cut(manifest, tmp_path, export_type, first=first, count=count, suffix=suffix)
    d = decode(result.path)
    assert d.indices == list(range(first, first + count))
    steps = {
        round((b - a) * float(spec.fps), 3) for a, b in zip(d.times, d.times[1:], strict=False)
    }
    assert steps == {1.0}
    check_sync(result, spec, count)


def test_clip_entirely_past_the_edge_of_a_live_archive_is_an_error(tmp_path: Path) -> None:
    spec = ArchiveSpec()
    archive = GrowingArchive(tmp_path / "rec", spec, kind="hls")
    archive.publish_until(2.0)
    res = resolve_frames(archive.manifest, spec, 100, 25)  # 4 s .. 5 s: not recorded yet
    assert res.video == () and res.missing_after_edge == pytest.approx(1.0)
    with pytest.raises(ExportError) as err:
        export_clip(Blobs(), res, tmp_path / "c.mp4", export_type=0)
    assert err.value.obj == str(archive.manifest)
    assert not (tmp_path / "c.mp4").exists()


_PROBE = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    from pipeline.manifest import RangeRequest, resolve
    from pipeline.media import export_clip
    from pipeline.storage import Blobs

    manifest, start_ms, duration_ms, export_type, out = sys.argv[1:]
    res = resolve(Blobs(), manifest, RangeRequest(int(start_ms), None, int(duration_ms)))
    result = export_clip(Blobs(), res, Path(out), export_type=int(export_type))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_kib": peak_kib, "frames": result.frame_count}))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("export_type", [0, 1, 2])
def test_peak_memory_does_not_grow_with_clip_length(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, export_type: int
) -> None:
    # tracemalloc does not see FFmpeg's allocations, so measure the whole process's peak
    # RSS in a fresh interpreter.  At 640x360 a decoded frame is ~340 KiB: holding the
    # frames (or GOPs) of the longer clip would add >100 MiB; streaming adds ~nothing.
    spec = ArchiveSpec(seconds=24.0, width=640, height=360)
    root = tmp_path_factory.getbasetemp() / "long-archive"
    manifest = root / "stream.mpd"
    if not manifest.exists():
        write_dash(root, spec)
    start = spec.start_pos_ms(FIRST)

    def peak(duration_ms: int) -> tuple[int, int]:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE, str(manifest), str(start), str(duration_ms),
             str(export_type), str(tmp_path / f"c{duration_ms}.mp4")],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        info = json.loads(proc.stdout)
        return int(info["peak_kib"]), int(info["frames"])

    short_kib, short_frames = peak(4000)
    long_kib, long_frames = peak(20000)
    assert (short_frames, long_frames) == (100, 500)
    assert long_kib - short_kib < 16 * 1024, (short_kib, long_kib)
