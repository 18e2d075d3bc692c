"""`mediaexport cut`/`thumb` through service.cli.main on every archive flavour of issue 2.

Each case runs the real command line on a generated archive, parses the one JSON line it
prints and decodes the output with a fresh decoder (MP4 edit lists ignored), reading the
barcode every synthetic frame carries, so the first and last frames are known exactly.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest

from pipeline.synthetic import ArchiveSpec
from tests.fixtures.media import MakeArchive, archive_spec
from tests.pipeline.cli_helpers import frames_of, run

FIRST, COUNT = 37, 75  # mid-GOP to mid-GOP: partial GOPs at both ends, one whole GOP between
ALL = list(range(FIRST, FIRST + COUNT))
SKIPPED = list(range(FIRST, 50)) + list(range(100, FIRST + COUNT))  # 2-4 s absent


def range_args(spec: ArchiveSpec, first: int, *, relative: bool) -> list[str]:
    if relative:
        ms = first * 1000 / spec.fps
        assert ms == int(ms), "pick a frame on a whole millisecond"
        whole, rest = divmod(int(ms), 1000)
        return ["--start-time", f"00:00:{whole:02d}.{rest:03d}"]
    return ["--start-pos", str(spec.start_pos_ms(first))]


def flavour(
    name: str,
    kind: str,
    opts: dict[str, Any],
    *,
    relative: bool = False,
    first: int = FIRST,
    count: int = COUNT,
    expected: list[int] | None = None,
    missing: int = 0,
    reasons: tuple[str, ...] = (),
) -> Any:
    """One archive flavour: the frames a cut of [first, first + count) must deliver."""
    frames = list(range(first, first + count)) if expected is None else expected
    return pytest.param(kind, opts, relative, first, count, frames, missing, list(reasons), id=name)


PAST_EDGE: dict[str, Any] = {
    "first": 130,
    "count": 40,
    "expected": list(range(130, 150)),
    "missing": 800,
}
NTSC = {"fps": Fraction(30000, 1001), "gop_frames": 60}
FLAVOURS = [
    flavour("dash-timeline-time", "dash", {}),
    flavour("dash-timeline-number", "dash", {"layout": "timeline-number"}),
    flavour("dash-template-duration", "dash", {"layout": "template-duration"}),
    flavour("dash-segment-list", "dash", {"layout": "segment-list"}),
    flavour("dash-segment-base", "dash", {"layout": "segment-base"}),
    flavour("dash-two-periods", "dash", {"periods": 2}),
    flavour("dash-three-periods", "dash", {"periods": 3}, first=90, count=25),
    flavour("dash-gap", "dash", {"gap": (2.0, 4.0)}, expected=SKIPPED, missing=2000,
            reasons=("gap",)),
    flavour("dash-dynamic-past-edge", "dash", {"dynamic": True}, **PAST_EDGE,
            reasons=("live_edge",)),
    flavour("dash-hevc", "dash", {"codec": "hevc"}),
    flavour("dash-open-gop-hevc", "dash", {"codec": "hevc", "open_gop": True}),
    flavour("dash-no-bframes", "dash", {"bframes": 0}),
    flavour("dash-no-clock", "dash", {"epoch_ms": None}, relative=True),
    flavour("hls-ts", "hls", {"container": "ts"}),
    flavour("hls-fmp4", "hls", {"container": "fmp4"}),
    flavour("hls-ts-hevc", "hls", {"codec": "hevc"}),
    flavour("hls-ts-media-no-pdt", "hls", {"master": False, "pdt": False}, relative=True),
    flavour("hls-discontinuity", "hls", {"discontinuity_at": 2.0}),
    flavour("hls-fmp4-discontinuity", "hls", {"container": "fmp4", "discontinuity_at": 2.0}),
    flavour("hls-gap", "hls", {"gap": (2.0, 4.0)}, expected=SKIPPED, missing=2000,
            reasons=("gap",)),
    flavour("hls-live-past-edge", "hls", {"live": True}, **PAST_EDGE, reasons=("live_edge",)),
    flavour("hls-2997", "hls", NTSC, first=41, count=80),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "opts", "relative", "first", "count", "expected", "missing", "reasons"), FLAVOURS
)
def test_cut_and_thumb_on_every_flavour(
    make_archive: MakeArchive,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    kind: str,
    opts: dict[str, Any],
    relative: bool,
    first: int,
    count: int,
    expected: list[int],
    missing: int,
    reasons: list[str],
) -> None:
    manifest = make_archive(kind, **opts)
    spec = archive_spec(manifest)
    where = range_args(spec, first, relative=relative)
    requested = round(count * 1000 / spec.fps)
    if not relative:  # what the CLI asks: StartPos .. StartPos + Duration in whole ms
        requested = spec.start_pos_ms(first + count) - spec.start_pos_ms(first)

    out_mp4 = tmp_path / "clip.mp4"
    argv = ["cut", str(manifest), *where, "--duration", str(requested), "--type", "0",
            "-o", str(out_mp4)]  # fmt: skip
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert out.count("\n") == 1
    info = json.loads(out)
    assert frames_of(out_mp4) == expected
    assert info["frame_count"] == len(expected)
    assert info["kind"] == kind and info["clock"] == ("relative" if relative else "wall")
    assert info["requested_ms"] == requested
    assert info["missing_ms"] == missing
    assert info["delivered_ms"] == requested - missing
    assert [g["reason"] for g in info["gaps"]] == reasons
    assert (info["width"], info["height"]) == (spec.width, spec.height)
    assert info["video_codec"] == spec.codec and info["audio_codec"] == "aac"
    assert info["container"] == "mp4" and info["size"] == out_mp4.stat().st_size
    assert info["first_frame_time"] == pytest.approx(first / float(spec.fps), abs=1e-6)
    assert abs(info["duration"] - len(expected) / float(spec.fps)) <= 1024 / 48000 + 1e-3

    thumb_at = expected[len(expected) // 2]
    out_jpg = tmp_path / "t.jpg"
    where = range_args(spec, thumb_at, relative=relative)
    code, out, err = run(["thumb", str(manifest), *where, "-o", str(out_jpg)], capsys)
    assert code == 0, err
    info = json.loads(out)
    assert frames_of(out_jpg) == [thumb_at]
    assert info["time"] == pytest.approx(thumb_at / float(spec.fps), abs=1e-6)
    assert (info["width"], info["height"]) == (spec.width, spec.height)


@pytest.mark.parametrize("export_type", [1, 2])
@pytest.mark.parametrize(
    ("kind", "opts"),
    [
        ("dash", {"layout": "segment-base"}),
        ("dash", {"periods": 2}),
        ("hls", {"container": "fmp4"}),
        ("hls", {"container": "ts", "gap": (2.0, 4.0)}),
    ],
)
def test_cut_reencoding_types_to_ts_and_mp4(
    make_archive: MakeArchive,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    kind: str,
    opts: dict[str, Any],
    export_type: int,
) -> None:
    manifest = make_archive(kind, **opts)
    spec = archive_spec(manifest)
    suffix = "ts" if export_type == 1 else "mp4"
    out_file = tmp_path / f"clip.{suffix}"
    argv = ["cut", str(manifest), *range_args(spec, FIRST, relative=False),
            "--duration", "3000", "--type", str(export_type), "-o", str(out_file)]  # fmt: skip
    code, out, err = run(argv, capsys)
    assert code == 0, err
    info = json.loads(out)
    expected = SKIPPED if "gap" in opts else ALL
    assert frames_of(out_file) == expected
    assert info["container"] == ("mpegts" if suffix == "ts" else "mp4")
    assert info["video_codec"] == ("h264" if export_type == 1 else "hevc")
    if export_type == 2:
        with av.open(str(out_file)) as c:
            assert c.streams.video[0].codec_tag == "hvc1"
