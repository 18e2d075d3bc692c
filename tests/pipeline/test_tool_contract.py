"""The CLI's contract for bad input, s3:// manifests and the demo archive.

Bad input: exit 2, nothing on stdout, exactly one line on stderr that names the manifest,
segment or field at fault, and no output file left behind.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.synthetic import ArchiveSpec, draw_frame
from tests.fixtures.media import MakeArchive, archive_spec
from tests.fixtures.services import S3Server
from tests.pipeline.cli_helpers import frames_of, run

SPEC = ArchiveSpec()


def check_one_line_error(
    argv: list[str], capsys: pytest.CaptureFixture[str], output: Path, *names: str
) -> str:
    code, out, err = run([*argv, "-o", str(output)], capsys)
    assert code == 2 and out == ""
    assert err.startswith("mediaexport: error: ") and err.count("\n") == 1, err
    for name in names:
        assert name in err, err
    assert not output.exists()
    assert not output.with_name(output.name + ".part").exists()
    return err


def _mpeg4_playlist(root: Path) -> Path:
    """An HLS media playlist (no clock) whose only TS segment holds MPEG-4 Part 2 video."""
    root.mkdir(parents=True, exist_ok=True)
    seg = root / "seg0.ts"
    with av.open(str(seg), "w", format="mpegts") as c:
        vs = c.add_stream("mpeg4", rate=25)
        assert isinstance(vs, av.VideoStream)
        vs.width, vs.height, vs.pix_fmt = 160, 90, "yuv420p"
        for k in range(50):
            frame = draw_frame(k, 160, 90).reformat(format="yuv420p")
            frame.pts = k
            for p in vs.encode(frame):
                c.mux(p)
        for p in vs.encode(None):
            c.mux(p)
    playlist = root / "index.m3u8"
    playlist.write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg0.ts\n"
        "#EXT-X-ENDLIST\n"
    )
    return playlist


def _damaged(make_archive: MakeArchive, tmp_path: Path, *, all_segments: bool) -> Path:
    """A copy of the default DASH archive with garbage in its middle (or every) video segment."""
    dst = tmp_path / "damaged"
    shutil.copytree(make_archive("dash").parent, dst)
    segments = sorted((dst / "vhigh").glob("t*.m4s"), key=lambda p: int(p.stem[1:]))
    for seg in segments if all_segments else segments[1:2]:
        seg.write_bytes(b"\x00" * 64 + b"garbage" * 100)
    return dst / "stream.mpd"


def test_bad_manifests_and_fields(
    make_archive: MakeArchive, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dash = make_archive("dash")
    no_clock = make_archive("dash", epoch_ms=None)
    at = str(SPEC.start_pos_ms(10))
    end_ms = SPEC.start_pos_ms(150)
    bad_xml = tmp_path / "bad.mpd"
    bad_xml.write_text("<MPD><Period>")
    bad_m3u8 = tmp_path / "bad.m3u8"
    bad_m3u8.write_text("this is not a playlist\n")
    neither = tmp_path / "notes.txt"
    neither.write_text("hello")
    out = tmp_path / "x.mp4"
    cases: list[tuple[list[str], tuple[str, ...]]] = [
        (["cut", str(tmp_path / "nope.mpd"), "--start-pos", at, "--duration", "1000"],
         ("nope.mpd",)),
        (["cut", str(bad_xml), "--start-pos", at, "--duration", "1000"], ("bad.mpd",)),
        (["cut", str(bad_m3u8), "--start-pos", at, "--duration", "1000"], ("bad.m3u8",)),
        (["cut", str(neither), "--start-pos", at, "--duration", "1000"], ("notes.txt",)),
        (["cut", str(dash), "--start-pos", at, "--duration=-5"], ("field Duration",)),
        (["cut", str(dash), "--start-pos", at, "--duration", "0"], ("field Duration",)),
        (["cut", str(dash), "--start-pos", at, "--duration", str(24 * 3600_000 + 1)],
         ("field Duration", "24 h")),
        (["cut", str(dash), "--start-pos=-1", "--duration", "1000"], ("field StartPos",)),
        (["cut", str(dash), "--duration", "1000"], ("field StartPos",)),
        (["cut", str(dash), "--start-time", "1h2m", "--duration", "1000"], ("field StartTime",)),
        (["cut", str(no_clock), "--start-pos", at, "--duration", "1000"], ("field StartTime",)),
        # Entirely after the end, and entirely before the start, of a finished archive.
        (["cut", str(dash), "--start-pos", str(end_ms + 5000), "--duration", "1000"],
         ("stream.mpd",)),
        (["cut", str(dash), "--start-pos", str(SPEC.start_pos_ms(0) - 60_000), "--duration",
          "1000"], ("stream.mpd",)),
        (["thumb", str(dash), "--start-pos", str(end_ms + 5000)], ("stream.mpd",)),
    ]  # fmt: skip
    for argv, names in cases:
        check_one_line_error(argv, capsys, out, *names)


def test_bad_media_is_named(
    make_archive: MakeArchive, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mpeg4 = _mpeg4_playlist(tmp_path / "mpeg4")
    for cmd in (["cut", "--duration", "1000"], ["thumb"]):
        argv = [cmd[0], str(mpeg4), "--start-time", "00:00:00.200", *cmd[1:]]
        check_one_line_error(argv, capsys, tmp_path / "m.mp4", "mpeg4", "seg0.ts")
    # A corrupt segment at the thumbnail point, and a clip whose every segment is corrupt.
    middle = _damaged(make_archive, tmp_path / "one", all_segments=False)
    argv = ["thumb", str(middle), "--start-pos", str(SPEC.start_pos_ms(60))]
    check_one_line_error(argv, capsys, tmp_path / "t.jpg", "t", ".m4s")
    every = _damaged(make_archive, tmp_path / "all", all_segments=True)
    argv = ["cut", str(every), "--start-pos", str(SPEC.start_pos_ms(10)), "--duration", "3000"]
    check_one_line_error(argv, capsys, tmp_path / "c.mp4", ".m4s")


def test_corrupt_segment_in_the_middle_is_reported_not_fatal(
    make_archive: MakeArchive, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _damaged(make_archive, tmp_path, all_segments=False)
    out = tmp_path / "c.mp4"
    argv = ["cut", str(manifest), "--start-pos", str(SPEC.start_pos_ms(37)),
            "--duration", "3000", "-o", str(out)]  # fmt: skip
    code, stdout, err = run(argv, capsys)
    assert code == 0, err
    info = json.loads(stdout)
    assert info["missing_ms"] == 2000 and info["delivered_ms"] == 1000
    assert [(g["start"], g["end"], g["reason"]) for g in info["gaps"]] == [(2.0, 4.0, "corrupt")]
    assert frames_of(out) == list(range(37, 50)) + list(range(100, 112))


def _upload(s3: S3Server, bucket: str, root: Path) -> None:
    client = s3.client()
    client.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    for path in root.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), bucket, f"rec/{path.relative_to(root)}")  # type: ignore[attr-defined]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("bucket", "kind", "opts"),
    [
        ("dash-timeline", "dash", {}),
        ("dash-sidx", "dash", {"layout": "segment-base"}),  # ranged GETs from the sidx
        ("hls-fmp4", "hls", {"container": "fmp4"}),
        ("hls-ts", "hls", {"container": "ts"}),
    ],
)
def test_s3_manifests_through_the_endpoint_setting(
    s3_server: S3Server,
    make_archive: MakeArchive,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    bucket: str,
    kind: str,
    opts: dict[str, object],
) -> None:
    manifest = make_archive(kind, **opts)
    spec = archive_spec(manifest)
    _upload(s3_server, bucket, manifest.parent)
    monkeypatch.setenv("EXPORT_S3_ENDPOINT_URL", s3_server.endpoint_url)
    url = f"s3://{bucket}/rec/{manifest.name}"

    out = tmp_path / "c.mp4"
    argv = ["cut", url, "--start-pos", str(spec.start_pos_ms(37)), "--duration", "3000",
            "--type", "0", "-o", str(out)]  # fmt: skip
    code, stdout, err = run(argv, capsys)
    assert code == 0, err
    info = json.loads(stdout)
    assert info["manifest"] == url and info["missing_ms"] == 0
    assert frames_of(out) == list(range(37, 112))

    jpg = tmp_path / "t.jpg"
    argv = ["thumb", url, "--start-pos", str(spec.start_pos_ms(63)), "-o", str(jpg)]
    code, stdout, err = run(argv, capsys)
    assert code == 0, err
    assert frames_of(jpg) == [63]

    missing = f"s3://{bucket}/rec/nope.mpd"
    argv = ["cut", missing, "--start-pos", str(spec.start_pos_ms(37)), "--duration", "1000"]
    check_one_line_error(argv, capsys, tmp_path / "m.mp4", missing)


@pytest.mark.parametrize("hls", [False, True])
def test_demo_archive_then_cut_and_thumb(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], hls: bool
) -> None:
    start = 1_700_000_000_000
    argv = ["demo-archive", str(tmp_path / "demo"), "--minutes", "0.1", "--start-pos", str(start)]
    code, out, err = run([*argv, "--hls"] if hls else argv, capsys)
    assert code == 0, err
    demo = json.loads(out)
    assert demo["kind"] == ("hls" if hls else "dash")
    manifest = demo["manifest"]
    fps = Fraction(25)
    first = 87  # 3.48 s, mid-GOP
    pos = start + int(first * 1000 / fps)

    clip = tmp_path / ("c.ts" if hls else "c.mp4")
    argv = ["cut", manifest, "--start-pos", str(pos), "--duration", "2000", "-o", str(clip)]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    info = json.loads(out)
    assert (info["width"], info["height"]) == (demo["width"], demo["height"])
    assert info["clock"] == "wall" and info["delivered_ms"] == 2000
    assert frames_of(clip) == list(range(first, first + 50))

    jpg = tmp_path / "t.jpg"
    code, out, err = run(["thumb", manifest, "--start-pos", str(pos), "-o", str(jpg)], capsys)
    assert code == 0, err
    assert frames_of(jpg) == [first]
    # Audio is there and beeps.
    with av.open(str(clip)) as c:
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    assert float(np.abs(pcm).max()) > 0.1


@pytest.mark.parametrize("kind", ["dash", "hls"])
def test_thumb_inside_a_gap_takes_the_first_frame_after_it(
    make_archive: MakeArchive, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    # 2-4 s is missing: the first frame at or after 2.6 s is frame 100 (4.0 s), although the
    # CLI's 1 s thumbnail window [2.6, 3.6) holds no segment at all.
    manifest = make_archive(kind, gap=(2.0, 4.0))
    jpg = tmp_path / "t.jpg"
    argv = ["thumb", str(manifest), "--start-pos", str(SPEC.start_pos_ms(65)), "-o", str(jpg)]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert json.loads(out)["time"] == pytest.approx(4.0)
    assert frames_of(jpg) == [100]


def test_thumb_past_the_live_edge_is_a_one_line_error(
    make_archive: MakeArchive, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = make_archive("hls", live=True)  # 6 s recorded so far, still growing
    argv = ["thumb", str(manifest), "--start-pos", str(SPEC.start_pos_ms(175))]
    check_one_line_error(argv, capsys, tmp_path / "t.jpg", manifest.name)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cut_draws_a_progress_bar_on_a_terminal_only(
    dash_archive: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv = ["cut", str(dash_archive), "--start-pos", str(SPEC.start_pos_ms(10)),
            "--duration", "4000", "-o", str(tmp_path / "c.mp4")]  # fmt: skip
    code, out, err = run(argv, capsys)  # captured stderr is not a terminal: no bar
    assert code == 0 and err == "" and json.loads(out)["delivered_ms"] == 4000
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    code, out, _ = run(argv, capsys)
    assert code == 0 and json.loads(out)["delivered_ms"] == 4000
    drawn = terminal.getvalue()
    assert drawn.startswith("\rcut [") and drawn.endswith("100%\n") and drawn.count("\n") == 1
