"""``mediaexport up``: the ready line, the demo recording, a job through HTTP, and SIGTERM
stopping everything it started (broker included) without losing the accepted job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from service.broker import free_port

pytestmark = pytest.mark.integration


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name may contain spaces: the ppid is the 2nd field after ")"
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(url + "/export", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        out: dict[str, Any] = json.loads(resp.read())
        return out


def test_up_serves_the_demo_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORT_")}
    env["EXPORT_H264_PRESET"] = "ultrafast"
    started = time.monotonic()
    cmd = [sys.executable, "-m", "service.cli", "up", "--port", str(port)]
    cmd += ["--data-dir", str(tmp_path / "var"), "--loglevel", "info"]
    with open(tmp_path / "up.log", "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        ready_s = time.monotonic() - started
        url = f"http://127.0.0.1:{port}"
        assert line.startswith(f"ready {url} kafka=127.0.0.1:"), (
            line,
            (tmp_path / "up.log").read_text()[-2000:],
        )
        assert line.endswith(f"data={tmp_path / 'var'}")
        print(f"ready line after {ready_s:.1f} s")  # a figure, not a budget
        brokers = _children(proc.pid)
        assert len(brokers) == 1, brokers  # the embedded Tansu broker

        demo = "mp4/demo/1/stream.mpd"
        assert (tmp_path / "var" / "archive" / demo).is_file()
        thumb = _post(
            url, {"StartTime": "00:00:10", "Duration": 1000, "LivePath": demo, "FetchMedia": False}
        )
        assert thumb["ErrorCode"] == 0, thumb
        with urllib.request.urlopen(f"{url}/files/export{thumb['ImagePath']}") as resp:
            assert resp.read(3) == b"\xff\xd8\xff"  # a JPEG

        media = {
            "StartTime": "00:00:20",
            "Duration": 3000,
            "LivePath": demo,
            "FetchMedia": True,
            "export_type": 1,
            "FileName": "last.mp4",
        }
        assert _post(url, media)["ErrorCode"] == 1
        proc.send_signal(signal.SIGTERM)  # while the accepted media job runs
        assert proc.wait(240) == 0  # drains the accepted media job first
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()  # type: ignore[union-attr]
    log = (tmp_path / "up.log").read_text()
    assert "shutdown: all 2 accepted jobs finished" in log, log[-3000:]
    clip = tmp_path / "var" / "exports" / "export"
    assert list(clip.glob("*/last.mp4")), "the accepted media job was lost"
    deadline = time.monotonic() + 120  # a bound, not a budget: ends when the broker is gone
    while any(_alive(b) for b in brokers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(b) for b in brokers), "orphan broker"


def test_up_stops_on_ctrl_c_when_its_stderr_pipe_is_gone(tmp_path: Path) -> None:
    # `make run | tee run.log`, then Ctrl-C: tee dies first, so every later write to stderr
    # fails.  That must not keep the service up (it used to serve on through every signal).
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORT_")}
    cmd = [sys.executable, "-m", "service.cli", "up", "--port", str(port)]
    cmd += ["--data-dir", str(tmp_path / "var"), "--loglevel", "info"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline().strip()
        assert line.startswith(f"ready http://127.0.0.1:{port} "), line
        brokers = _children(proc.pid)
        proc.stderr.close()  # the reader of stderr is gone
        proc.send_signal(signal.SIGINT)
        assert proc.wait(180) == 0  # a bound, not a budget
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()  # type: ignore[union-attr]
    deadline = time.monotonic() + 120
    while any(_alive(b) for b in brokers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(b) for b in brokers), "orphan broker"
