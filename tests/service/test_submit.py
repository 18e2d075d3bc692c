"""``mediaexport submit`` against one real ``mediaexport up`` (its broker on a pinned
EXPORT_KAFKA_PORT): a thumbnail and a clip waited for and downloaded, a refused request, an
unreachable server, an output fetched from S3 when the service does not serve it, and
``--version``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import av
import pytest

from service.broker import free_port
from service.client import Service
from service.submit import EXIT_FAILED, EXIT_REFUSED, EXIT_UNREACHABLE, download, progress_note
from tests.fixtures.services import S3Server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

DEMO = "mp4/demo/1/stream.mpd"  # written by `up` on first start (25 fps)
WAIT_S = 240  # a bound for a busy machine, not a budget


@dataclass(frozen=True)
class Up:
    url: str
    ready: str  # the ready line
    kafka_port: int


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("EXPORT_")}


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    root = tmp_path_factory.mktemp("submit")
    port, kafka_port = free_port(), free_port()
    env = _env() | {"EXPORT_KAFKA_PORT": str(kafka_port), "EXPORT_H264_PRESET": "ultrafast"}
    cmd = [sys.executable, "-m", "service.cli", "up", "--port", str(port)]
    cmd += ["--data-dir", str(root / "var")]
    with open(root / "up.log", "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()  # `up` prints it once requests are accepted
        assert line.startswith("ready "), (line, (root / "up.log").read_text()[-2000:])
        yield Up(f"http://127.0.0.1:{port}", line, kafka_port)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


def submit(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "service.cli", "submit", *args, "--timeout", str(WAIT_S)]
    return subprocess.run(
        cmd, capture_output=True, text=True, env=_env(), timeout=WAIT_S + 60, check=False
    )


def _answer(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, (proc.stdout, proc.stderr)  # one JSON line, nothing else
    answer: dict[str, Any] = json.loads(lines[0])
    return answer


def test_the_ready_line_names_the_pinned_kafka_port(up: Up) -> None:
    assert f" kafka=127.0.0.1:{up.kafka_port} " in up.ready


def test_a_thumbnail_is_waited_for_and_downloaded_as_a_jpeg(up: Up, tmp_path: Path) -> None:
    out = tmp_path / "out.jpg"
    proc = submit(
        "--server", up.url, "--live-path", DEMO, "--start-time", "00:00:10",
        "--duration", "1000", "--thumbnail", "--wait", "-o", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert _answer(proc)["ErrorCode"] == 0
    assert out.read_bytes()[:3] == b"\xff\xd8\xff"
    assert proc.stderr == ""  # no progress bar: stderr is not a terminal


def test_a_clip_is_waited_for_and_downloaded_and_it_decodes(up: Up, tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    proc = submit(
        "--server", up.url, "--live-path", DEMO, "--start-time", "00:00:20",
        "--duration", "2000", "--type", "1", "--wait", "-o", str(clip),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    answer = _answer(proc)
    assert answer["ErrorCode"] == 5 and answer["LackLength"] == 0
    with av.open(str(clip)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == 50  # 2 s at 25 fps


def test_a_refused_request_exits_2_naming_the_field(up: Up) -> None:
    proc = submit(
        "--server", up.url, "--live-path", DEMO, "--start-time", "00:00:10", "--duration", "0"
    )  # fmt: skip
    assert proc.returncode == EXIT_REFUSED
    assert _answer(proc)["ErrorCode"] == -2
    assert "ErrorCode -2" in proc.stderr and "field Duration" in proc.stderr


def test_an_unknown_live_path_is_a_failed_job(up: Up) -> None:
    proc = submit(
        "--server", up.url, "--live-path", "mp4/none/1/stream.mpd",
        "--start-time", "00:00:10", "--duration", "1000", "--wait",
    )  # fmt: skip
    assert proc.returncode == EXIT_FAILED
    assert _answer(proc)["ErrorCode"] == -1
    assert "not such dir" in proc.stderr and "LivePath" in proc.stderr


def test_an_unreachable_server_exits_5() -> None:
    port = free_port()  # nothing listens there
    proc = submit(
        "--server", f"127.0.0.1:{port}", "--live-path", DEMO,
        "--start-pos", "1562253612833", "--duration", "1000",
    )  # fmt: skip
    assert proc.returncode == EXIT_UNREACHABLE
    assert proc.stdout == ""
    assert "cannot reach the service" in proc.stderr


def test_an_output_the_service_does_not_serve_comes_from_s3(
    up: Up, s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = "0123456789ABCDEF0123456789ABCDEF"  # unknown to the service: /files answers 404
    client: Any = s3_server.client()
    client.create_bucket(Bucket="submit-out")
    client.put_object(Bucket="submit-out", Key=f"out/export/{job}/{job}.jpg", Body=b"JPEG")
    monkeypatch.setenv("EXPORT_S3_ENDPOINT_URL", s3_server.endpoint_url)
    answer = {"ErrorCode": 0, "ImagePath": f"/{job}/{job}.jpg", "S3Dir": "export", "JobId": job}
    dest = tmp_path / "from-s3.jpg"
    service = Service(up.url, None, time.monotonic() + WAIT_S)
    download(service, answer, dest, "s3://submit-out/out")
    assert dest.read_bytes() == b"JPEG"
    assert not dest.with_name("from-s3.jpg.part").exists()


def test_the_progress_note_has_state_eta_and_lack_length() -> None:
    running = {"ErrorCode": 1, "State": "transcoding", "Progress": 0.25, "LackLength": 1500}
    assert progress_note(running, elapsed_s=10.0) == (
        0.25,
        "transcoding ETA 30s LackLength 1500 ms",
    )
    assert progress_note({"ErrorCode": 1, "Progress": 0.0}, 1.0)[1].startswith("accepted ETA ?")


def test_version_prints_the_package_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "service.cli", "--version"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"mediaexport {version('mediaexport')}"
