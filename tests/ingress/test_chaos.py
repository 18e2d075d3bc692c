"""Chaos: workers killed with SIGKILL at random moments, over several rounds, while jobs of
every kind run; every job ends done, with one export.completed each, frame-exact outputs.

Two ``mediaexport worker`` processes on a private broker (as in test_crash.py: the topic
names and consumer group are fixed, so a dead member must not reach the shared stack).  Each
round submits new jobs, waits a random moment, kills a random worker with SIGKILL and starts
a replacement.  The supervisor's timeout is short here, so a job whose event died with a
worker is re-driven within seconds rather than minutes.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import pytest

import schemas
from pipeline.synthetic import ArchiveSpec, read_frame_index, write_dash
from service.broker import EmbeddedBroker, free_port
from tests.ingress.worker_process import (
    post_export,
    read_to_end,
    spawn_worker,
    stop_worker,
    wait_ready,
)
from tests.pipeline.cli_helpers import frames_of

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPEC = ArchiveSpec(seconds=12.0, width=320, height=180)
CAM = "mp4/chaos/1/stream.mpd"
ROUNDS = int(os.environ.get("EXPORT_TEST_CHAOS_ROUNDS", "3"))
# Fixed, so CI sees the same kills every run; EXPORT_TEST_CHAOS_SEED / _ROUNDS vary it (soak).
SEED = int(os.environ.get("EXPORT_TEST_CHAOS_SEED", "20261201"))
PATIENCE_S = 300.0  # for every job to end: generous, a busy machine is slow, never wrong


@dataclass
class Proc:
    name: str
    url: str
    proc: subprocess.Popen[str]
    log: Path


class Cluster:
    def __init__(self, tmp_path: Path, bootstrap: str) -> None:
        self.tmp_path = tmp_path
        archive = tmp_path / "archive"
        write_dash(archive / Path(CAM).parent, SPEC)
        self.output = tmp_path / "out"
        self.env = dict(os.environ)
        self.env.update(
            {
                "EXPORT_KAFKA_BOOTSTRAP": bootstrap,
                "EXPORT_ARCHIVE_URL": str(archive),
                "EXPORT_OUTPUT_URL": str(self.output),
                "EXPORT_H264_PRESET": "ultrafast",
                "EXPORT_DRAIN_TIMEOUT_MS": "0",
                "EXPORT_STAGE_TIMEOUT_MS": "15000",
                "EXPORT_LIVE_WAIT_MS": "0",
            }
        )
        self.workers: list[Proc] = []
        self.started = 0

    def start(self) -> Proc:
        self.started += 1
        name = f"chaos-{self.started}"
        port = free_port()
        env = dict(
            self.env,
            EXPORT_HTTP_PORT=str(port),
            EXPORT_WORKER_ID=name,
            EXPORT_DATA_DIR=str(self.tmp_path / name),
        )
        log = self.tmp_path / f"{name}.log"
        proc = spawn_worker(env, log)
        wait_ready(proc, log, name)
        worker = Proc(name, f"http://127.0.0.1:{port}", proc, log)
        self.workers.append(worker)
        return worker

    def kill(self, worker: Proc) -> None:
        worker.proc.send_signal(signal.SIGKILL)
        worker.proc.wait(30)
        if worker.proc.stdout is not None:
            worker.proc.stdout.close()
        self.workers.remove(worker)

    def stop(self) -> None:
        for w in self.workers:
            stop_worker(w.proc, timeout=20)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with EmbeddedBroker(log_path=tmp_path / "broker.log") as broker:
        c = Cluster(tmp_path, broker.bootstrap)
        try:
            c.start()
            c.start()
            yield c
        finally:
            c.stop()


def _bodies(round_no: int) -> list[tuple[dict[str, Any], int, int]]:
    """(body, first source frame, frame count) for this round's jobs: every kind of job."""
    out = []
    for k, (media, export_type, first, frames) in enumerate(
        [(False, 0, 40 + round_no, 1), (True, 0, 30 + round_no, 75), (True, 1, 60 + round_no, 50)]
    ):
        body = {
            "StartPos": SPEC.start_pos_ms(first),
            "Duration": frames * 40,
            "LivePath": CAM,
            "FetchMedia": media,
            "export_type": export_type,
            "FileName": f"r{round_no}-{k}.mp4",
        }
        out.append((body, first, frames))
    return out


def test_random_kills_over_rounds_lose_and_duplicate_nothing(cluster: Cluster) -> None:
    rng = random.Random(SEED)
    jobs: dict[str, tuple[dict[str, Any], int, int]] = {}
    for round_no in range(ROUNDS):
        for body, first, frames in _bodies(round_no):
            answer = post_export(rng.choice(cluster.workers).url, body)
            assert answer["ErrorCode"] in (0, 1), answer
            jobs[answer["JobId"]] = (body, first, frames)
        time.sleep(rng.uniform(0.2, 3.0))  # a random moment in the middle of the work
        cluster.kill(rng.choice(cluster.workers))
        cluster.start()

    finals: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + PATIENCE_S
    while len(finals) < len(jobs):
        assert time.monotonic() < deadline, f"never ended: {sorted(set(jobs) - set(finals))}"
        for job, (body, _, _) in jobs.items():
            if job in finals:
                continue
            answer = post_export(cluster.workers[0].url, body)  # a poll of the same job
            if answer["ErrorCode"] != 1:
                finals[job] = answer
        time.sleep(0.5)

    completed = read_to_end(cluster.env["EXPORT_KAFKA_BOOTSTRAP"], schemas.COMPLETED)
    for job, (body, first, frames) in jobs.items():
        expected = 5 if body["FetchMedia"] else 0
        assert finals[job]["ErrorCode"] == expected, finals[job]
        events = [e for e in completed.get(job, []) if e is not None]
        assert [e["outcome"] for e in events] == ["ok"], (job, events)
        if body["FetchMedia"]:
            clip = cluster.output / finals[job]["VideoPath"].lstrip("/")
            got = frames_of(clip)
            assert got == list(range(first, first + frames)), (job, got[:3], len(got))
        image = cluster.output / "export" / finals[job]["ImagePath"].lstrip("/")
        with av.open(str(image)) as c:
            assert read_frame_index(next(c.decode(video=0))) == first
    print(f"{len(jobs)} jobs, {ROUNDS} kills, {cluster.started} workers started: 0 lost, 0 twice")
