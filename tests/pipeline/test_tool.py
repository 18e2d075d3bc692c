"""The offline CLI: demo-archive (ours), thumb and cut (wiring onto pipeline.media)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest

from pipeline.synthetic import ArchiveSpec, read_frame_index
from pipeline.tool import ProgressBar
from tests.fixtures.media import archive_spec
from tests.pipeline.cli_helpers import frames_of, run


def test_demo_archive_dash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        ["demo-archive", str(tmp_path), "--minutes", "0.1", "--start-pos", "1700000000000"], capsys
    )
    assert code == 0
    info = json.loads(out)
    assert info["start_pos_ms"] == 1_700_000_000_000
    assert info["end_pos_ms"] == 1_700_000_006_000
    manifest = Path(info["manifest"])
    assert manifest.name == "stream.mpd"
    assert 'availabilityStartTime="2023-11-14T22:13:20.000Z"' in manifest.read_text()
    init = (tmp_path / "vhigh/init.mp4").read_bytes()
    seg = sorted((tmp_path / "vhigh").glob("t*.m4s"))[0].read_bytes()
    with av.open(io.BytesIO(init + seg), "r") as c:
        frame = next(iter(c.decode(video=0)))
        assert (frame.width, frame.height) == (640, 360)
        assert read_frame_index(frame) == 0


def test_demo_archive_hls_defaults_to_now(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import time

    before = int(time.time() * 1000)
    code, out, _ = run(["demo-archive", str(tmp_path), "--minutes", "0.05", "--hls"], capsys)
    after = int(time.time() * 1000)
    info = json.loads(out)
    assert code == 0 and info["kind"] == "hls"
    # Now minus the 3 s length, rounded down to the second.
    assert info["start_pos_ms"] % 1000 == 0
    assert before - 3000 - 1000 < info["start_pos_ms"] <= after - 3000
    assert Path(info["manifest"]).read_text().startswith("#EXTM3U")


def test_demo_archive_rejects_bad_minutes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["demo-archive", str(tmp_path), "--minutes", "0"], capsys)
    assert code == 2 and err.startswith("mediaexport: error: ") and err.count("\n") == 1


def test_thumb_prints_json_and_writes_the_exact_frame(
    dash_archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = archive_spec(dash_archive)
    out_jpg = tmp_path / "t.jpg"
    argv = [
        "thumb",
        str(dash_archive),
        "--start-pos",
        str(spec.start_pos_ms(63)),
        "-o",
        str(out_jpg),
    ]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    info = json.loads(out)
    assert info["path"] == str(out_jpg) and info["width"] == 320
    assert info["time"] == pytest.approx(63 / 25)
    assert frames_of(out_jpg) == [63]


@pytest.mark.parametrize("export_type", [0, 1])
def test_cut_prints_json_with_delivered_and_missing(
    dash_archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], export_type: int
) -> None:
    spec = archive_spec(dash_archive)
    out_mp4 = tmp_path / f"c{export_type}.mp4"
    argv = [
        "cut", str(dash_archive), "--start-pos", str(spec.start_pos_ms(30)),
        "--duration", "2000", "--type", str(export_type), "-o", str(out_mp4),
    ]  # fmt: skip
    code, out, err = run(argv, capsys)
    assert code == 0, err
    info = json.loads(out)
    assert info["delivered_ms"] == 2000 and info["missing_ms"] == 0
    assert info["requested_ms"] == 2000
    frames = frames_of(out_mp4)
    assert frames == list(range(30, 80))


def test_cut_errors_are_one_line_and_exit_2(
    dash_archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = ArchiveSpec()
    bad = [
        ["cut", str(tmp_path / "nope.mpd"), "--start-pos", str(spec.start_pos_ms(0))],
        ["cut", str(dash_archive), "--start-pos", str(spec.start_pos_ms(0)), "--duration", "0"],
    ]
    for argv in bad:
        if "--duration" not in argv:
            argv += ["--duration", "1000"]
        code, out, err = run([*argv, "-o", str(tmp_path / "x.mp4")], capsys)
        assert code == 2 and out == ""
        assert err.startswith("mediaexport: error: ") and err.count("\n") == 1
    assert "Duration" in err


def test_s3_endpoint_comes_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.tool import _blobs, _settings

    monkeypatch.setenv("EXPORT_S3_ENDPOINT_URL", "http://127.0.0.1:9999")
    blobs = _blobs(_settings())
    assert blobs._endpoint == "http://127.0.0.1:9999"


def test_progress_bar_redraws_one_line() -> None:
    shown: list[str] = []
    bar = ProgressBar(width=10, write=shown.append)
    for f in (0.0, 0.004, 0.5, 1.0):
        bar(f)
    bar.close()
    assert shown == [
        "\rcut [..........]   0%",
        "\rcut [#####.....]  50%",
        "\rcut [##########] 100%",
        "\n",
    ]


def test_console_entry_point_runs(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "service.cli", "thumb", "--help"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0 and "--start-pos" in proc.stdout


def test_a_thumb_process_flushes_its_line_and_exit_status_before_it_ends(
    dash_archive: Path, tmp_path: Path
) -> None:
    # The process ends itself after an offline command (service.cli.main): its JSON line
    # must still arrive on a piped (block-buffered) stdout, and a refusal must still say 2.
    spec = archive_spec(dash_archive)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    base = [sys.executable, "-m", "service.cli", "thumb"]
    ok = subprocess.run(
        [*base, str(dash_archive), "--start-pos", str(spec.start_pos_ms(30)), "-o",
         str(tmp_path / "t.jpg")],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["path"] == str(tmp_path / "t.jpg")
    with av.open(str(tmp_path / "t.jpg")) as c:
        assert read_frame_index(next(c.decode(video=0))) == 30
    refused = subprocess.run(
        [*base, str(tmp_path / "none.mpd"), "--start-pos", "1", "-o", str(tmp_path / "u.jpg")],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith("mediaexport: error:")
