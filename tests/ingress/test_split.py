"""Long clips split across workers, with a real broker and two ``mediaexport worker``
processes sharing one output store (moto S3): the chunks of one job run on both workers
and join into one frame-exact clip; a worker killed inside a chunk costs only that chunk.

As in test_crash.py, the workers use a broker of their own (a private Tansu process for
this module; the session broker under EXPORT_TEST_DOCKER=1).  Every wait is for a
condition, bounded in minutes; nothing asserts how fast.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
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
from tests.fixtures.services import S3Server, use_docker
from tests.ingress.worker_process import (
    post_export,
    read_topic,
    spawn_worker,
    stop_worker,
    transcodes_in_flight,
    wait_ready,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

# 12 s at the "slower" preset: each of the 4 chunks (3 s) runs long enough to be seen
# running and killed, and short enough to keep the module quick.
SPEC = ArchiveSpec(seconds=14.0)
FIRST_FRAME = 10
CLIP_FRAMES = 300
CHUNKS = 4  # 12 s split at 3 s, on 4 partitions
OUT_BUCKET = "split-exports"
CAM = "mp4/split/1/stream.mpd"
SEE_CHUNK_S = 300
DELIVER_S = 600


@dataclass
class Worker:
    name: str
    url: str
    proc: subprocess.Popen[str]
    log: Path

    def in_flight(self) -> int:
        return transcodes_in_flight(self.url)

    def transcoded(self, job: str) -> list[int]:
        """The chunks of ``job`` this worker transcoded (and stored) itself."""
        pattern = rf"job {job}: chunk (\d+) of {CHUNKS} transcoded"
        return [int(i) for i in re.findall(pattern, self.log.read_text())]


@pytest.fixture(scope="module")
def bootstrap(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[str]:
    if use_docker():
        yield request.getfixturevalue("kafka_bootstrap")
        return
    log = tmp_path_factory.mktemp("split-broker") / "broker.log"
    with EmbeddedBroker(log_path=log) as broker:
        yield broker.bootstrap


@pytest.fixture(scope="module")
def workers(
    tmp_path_factory: pytest.TempPathFactory, bootstrap: str, s3_server: S3Server
) -> Iterator[list[Worker]]:
    """Two workers for the module (the last test kills one of them)."""
    tmp_path = tmp_path_factory.mktemp("split-workers")
    archive = tmp_path / "archive"
    write_dash(archive / Path(CAM).parent, SPEC)
    client: Any = s3_server.client()
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=OUT_BUCKET)
    base = dict(os.environ) | s3_server.env
    base |= {
        "EXPORT_KAFKA_BOOTSTRAP": bootstrap,
        "EXPORT_ARCHIVE_URL": str(archive),
        "EXPORT_OUTPUT_URL": f"s3://{OUT_BUCKET}/out",
        "EXPORT_H264_PRESET": "slower",
        "EXPORT_SPLIT_SECONDS": "3",
        "EXPORT_PARTITIONS": "4",
        "EXPORT_MAX_TRANSCODES": "1",  # a worker's chunks one after the other
        "EXPORT_DRAIN_TIMEOUT_MS": "0",
        "EXPORT_STAGE_TIMEOUT_MS": "30000",
    }
    started: list[Worker] = []
    try:
        for name in ("split-a", "split-b"):
            port = free_port()
            env = base | {
                "EXPORT_HTTP_PORT": str(port),
                "EXPORT_WORKER_ID": name,
                "EXPORT_DATA_DIR": str(tmp_path / name),
            }
            log = tmp_path / f"{name}.log"
            started.append(Worker(name, f"http://127.0.0.1:{port}", spawn_worker(env, log), log))
        for w in started:
            wait_ready(w.proc, w.log, w.name)
        yield started
    finally:
        for w in started:
            stop_worker(w.proc, timeout=20)


def _body(file_name: str) -> dict[str, Any]:
    return {
        "ServiceCaller": "mma",
        "StartPos": SPEC.start_pos_ms(FIRST_FRAME),
        "Duration": CLIP_FRAMES * 40,
        "LivePath": CAM,
        "FetchMedia": True,
        "export_type": 1,
        "FileName": file_name,
        "SessionId": "S",
    }


def _wait_done(worker: Worker, body: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + DELIVER_S
    while True:
        answer = post_export(worker.url, body)  # the same body: a poll of the same job
        assert answer["ErrorCode"] in (1, 5), answer
        if answer["ErrorCode"] == 5:
            return answer
        assert time.monotonic() < deadline, f"job not done: {answer}"
        time.sleep(0.3)


def _check_delivered(s3: S3Server, bootstrap: str, job: str, name: str) -> dict[str, Any]:
    """The clip is frame-exact, its job completed once, and no chunk is left in staging."""
    client: Any = s3.client()
    clip = client.get_object(Bucket=OUT_BUCKET, Key=f"out/export/{job}/{name}")["Body"].read()
    with av.open(io.BytesIO(clip), "r", options={"ignore_editlist": "1"}) as c:
        frames = [read_frame_index(f) for f in c.decode(video=0)]
    assert frames == list(range(FIRST_FRAME, FIRST_FRAME + CLIP_FRAMES))
    completed = read_topic(bootstrap, schemas.COMPLETED, key=job, wait_for=1)
    assert len(completed) == 1 and completed[0]["outcome"] == "ok", completed
    assert completed[0]["outputs"]["video"]["facts"]["chunks"] == CHUNKS
    deadline = time.monotonic() + 60
    while _staging(s3, job) and time.monotonic() < deadline:
        time.sleep(0.5)  # a repeated chunk's own copies go a moment after the job is done
    assert _staging(s3, job) == []
    return completed[0]


def _staging(s3: S3Server, job_id: str) -> list[str]:
    client: Any = s3.client()
    listing = client.list_objects_v2(Bucket=OUT_BUCKET, Prefix=f"out/staging/{job_id}/")
    return [o["Key"] for o in listing.get("Contents", [])]


def test_a_split_job_runs_on_both_workers_and_joins_frame_exact(
    workers: list[Worker], bootstrap: str, s3_server: S3Server
) -> None:
    body = _body("split.mp4")
    first = post_export(workers[0].url, body)
    assert first["ErrorCode"] == 1, first
    job = first["JobId"]
    _wait_done(workers[1], body)
    _check_delivered(s3_server, bootstrap, job, "split.mp4")
    done = {w.name: w.transcoded(job) for w in workers}
    assert sorted(done["split-a"] + done["split-b"]) == list(range(CHUNKS)), done
    # 4 chunks on 4 partitions, 2 partitions per worker: both took part
    assert all(done.values()), done


# Last in the module: it kills one of the module's workers.
def test_a_worker_killed_inside_a_chunk_costs_only_its_chunks(
    workers: list[Worker], bootstrap: str, s3_server: S3Server
) -> None:
    body = _body("killed.mp4")
    first = post_export(workers[0].url, body)
    job = first["JobId"]
    # Kill a worker inside its second chunk: 4 chunks, one at a time per worker, so some
    # worker has at least two, and its first is stored by then.
    deadline = time.monotonic() + SEE_CHUNK_S
    victim: Worker | None = None
    while victim is None:
        assert time.monotonic() < deadline, "no worker ever ran a second chunk"
        victim = next((w for w in workers if w.transcoded(job) and w.in_flight() >= 1), None)
        time.sleep(0.05)
    finished = victim.transcoded(job)
    victim.proc.send_signal(signal.SIGKILL)
    assert victim.proc.wait(60) == -signal.SIGKILL
    survivor = next(w for w in workers if w is not victim)
    _wait_done(survivor, body)
    _check_delivered(s3_server, bootstrap, job, "killed.mp4")
    # Every chunk was transcoded to the end once: what the killed worker had finished was
    # not done again, and the survivor ran what it lost (and its own).
    by_victim, by_survivor = victim.transcoded(job), survivor.transcoded(job)
    assert by_victim == finished
    assert sorted(by_victim + by_survivor) == list(range(CHUNKS)), (by_victim, by_survivor)
    print(f"chunks transcoded: {by_victim} by the killed worker, {by_survivor} by the survivor")
