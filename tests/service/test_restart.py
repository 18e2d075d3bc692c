"""The one-box default survives a restart: `mediaexport up` killed with SIGKILL mid-job and
started again on the same data folder answers the finished job's poll as before and runs the
unfinished one to the end, with one export.completed for it on the new broker."""

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
from tests.ingress.worker_process import read_topic
from tests.pipeline.cli_helpers import frames_of

pytestmark = pytest.mark.integration

DEMO = "mp4/demo/1/stream.mpd"
PATIENCE_S = 240.0  # generous: a busy 2-core machine may be slow, never wrong


class Up:
    def __init__(self, tmp_path: Path, port: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORT_")}
        env["EXPORT_H264_PRESET"] = "ultrafast"
        cmd = [sys.executable, "-m", "service.cli", "up", "--port", str(port)]
        cmd += ["--data-dir", str(tmp_path / "var"), "--loglevel", "info"]
        self.log = tmp_path / f"up-{time.monotonic_ns()}.log"
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        assert line.startswith("ready "), (line, self.log.read_text()[-3000:])
        self.url = f"http://127.0.0.1:{port}"
        self.bootstrap = line.split("kafka=", 1)[1].split()[0]

    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(
            self.url + "/export", data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            out: dict[str, Any] = json.loads(resp.read())
            return out

    def get(self, job_id: str) -> dict[str, Any]:
        """A poll that can never start a job (unlike a re-POST): only what is remembered."""
        with urllib.request.urlopen(f"{self.url}/export/{job_id}", timeout=60) as resp:
            out: dict[str, Any] = json.loads(resp.read())
            return out

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _poll_until_final(poll: Any) -> dict[str, Any]:
    deadline = time.monotonic() + PATIENCE_S
    answer: dict[str, Any] = poll()
    while answer["ErrorCode"] == 1 and time.monotonic() < deadline:
        time.sleep(0.5)
        answer = poll()
    return answer


def test_a_killed_up_restarts_with_its_jobs(tmp_path: Path) -> None:
    port = free_port()
    thumb = {"StartTime": "00:00:10", "Duration": 1000, "LivePath": DEMO, "FetchMedia": False}
    media = {
        "StartTime": "00:00:04",
        "Duration": 20000,
        "LivePath": DEMO,
        "FetchMedia": True,
        "export_type": 2,  # H.265: long enough to be killed in the middle
        "FileName": "restart.mp4",
    }
    first = Up(tmp_path, port)
    try:
        done = _poll_until_final(lambda: first.post(thumb))
        assert done["ErrorCode"] == 0, done
        accepted = first.post(media)
        assert accepted["ErrorCode"] == 1, accepted
    finally:
        first.kill()  # mid-job: the media job has not finished
    second = Up(tmp_path, port)
    try:
        again = second.get(done["JobId"])
        assert again["ErrorCode"] == 0, again
        assert again["ImagePath"] == done["ImagePath"]
        finished = _poll_until_final(lambda: second.get(accepted["JobId"]))
        assert finished["ErrorCode"] == 5, (finished, second.log.read_text()[-3000:])
        assert finished["JobId"] == accepted["JobId"]
        completed = read_topic(
            second.bootstrap, "export.completed", key=accepted["JobId"], wait_for=1, timeout=60
        )
        assert [c["outcome"] for c in completed] == ["ok"]
        clip = tmp_path / "var" / "exports" / finished["VideoPath"].lstrip("/")
        frames = frames_of(clip)
        assert frames == list(range(100, 600)), "from 00:00:04 at 25 fps: every frame, once"
    finally:
        second.stop()
