"""Local delivery against the real broker: a thumbnail handed from agent to agent in one
process writes the same events on every topic and ends with the same status row as one that
takes every broker hop (EXPORT_LOCAL_DELIVERY=off), and a worker killed right after answering
leaves a job a restarted worker does not run or complete again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.synthetic import ArchiveSpec, write_dash
from service.broker import free_port
from tests.ingress.worker_process import post_export, read_to_end, stop_worker, wait_ready

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

LIVE = "cam/stream.mpd"
CHANGELOG = "mediaexport-status-changelog"
PER_JOB = ("export.requests", "export.frames", "export.uploads", "export.completed")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("local-archive")
    write_dash(root / "cam", ArchiveSpec(seconds=6.0))
    return root


def start(kafka: str, archive: Path, root: Path, local: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORT_")}
    env |= {
        "EXPORT_KAFKA_BOOTSTRAP": kafka,
        "EXPORT_HTTP_PORT": str(port),
        "EXPORT_DATA_DIR": str(root / "data"),
        "EXPORT_ARCHIVE_URL": str(archive),
        "EXPORT_SYNC_WAIT_MS": "120000",  # a bound for a busy machine, not a budget
        "EXPORT_WORKER_ID": f"local-{local}",
        "EXPORT_LOCAL_DELIVERY": local,
    }
    root.mkdir(parents=True, exist_ok=True)
    log = root / f"worker-{local}.log"
    with open(log, "a") as err:
        cmd = [sys.executable, "-m", "service.cli", "worker", "--loglevel", "debug"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    wait_ready(proc, log, f"worker {local}")
    return proc, f"http://127.0.0.1:{port}"


def thumbnail(url: str, start_time: str) -> str:
    body = {"LivePath": LIVE, "StartTime": start_time, "Duration": 1000, "FetchMedia": False}
    answer = post_export(url, body, timeout=180)
    assert answer["ErrorCode"] == 0, answer
    job_id: str = answer["JobId"]
    return job_id


def run_job(kafka: str, archive: Path, root: Path, local: str, start_time: str) -> str:
    proc, url = start(kafka, archive, root, local)
    try:
        job_id = thumbnail(url, start_time)
        final_row(kafka, job_id)  # the status agent folds the final status after the answer
        return job_id
    finally:
        stop_worker(proc)


def final_row(kafka: str, job_id: str, timeout: float = 240) -> dict[str, Any]:
    """The job's row in the status table once it is final (bounded; a busy machine)."""
    deadline = time.monotonic() + timeout
    while True:
        row: dict[str, Any] = read_to_end(kafka, CHANGELOG).get(job_id, [{}])[-1]
        if row.get("state") in ("done", "failed") or time.monotonic() > deadline:
            return row
        time.sleep(0.5)


def shape(row: dict[str, Any]) -> dict[str, Any]:
    """A status row without what differs between two jobs: ids, keys, request, clock."""
    out = {k: v for k, v in row.items() if k not in ("job_id", "image_key", "request")}
    for k in ("updated_at_ms", "state_since_ms", "created_at_ms"):
        out[k] = bool(out[k])
    out["stages"] = {name: sorted(t) for name, t in row["stages"].items()}
    return out


def events_of(kafka: str, job_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {t: len(read_to_end(kafka, t).get(job_id, [])) for t in PER_JOB}
    reports = read_to_end(kafka, "export.status")[job_id]
    out["export.status"] = [
        (r["state"], r.get("stage")) for r in reports if r.get("stage") != "heartbeat"
    ]
    return out


def handed(log: Path) -> set[str]:
    lines = log.read_text().splitlines()
    return {line.split("handed ")[1].split("[")[0] for line in lines if "handed export." in line}


def test_a_thumbnail_handed_over_in_process_leaves_the_same_events_and_status_row(
    kafka_bootstrap: str, archive: Path, tmp_path: Path
) -> None:
    on = run_job(kafka_bootstrap, archive, tmp_path / "on", "on", "0:00:02.480")
    off = run_job(kafka_bootstrap, archive, tmp_path / "off", "off", "0:00:03.480")
    # A request is handed over after the "accepted" status's ack, so its Kafka copy can come
    # first on a busy machine (then it takes the hop); frames and uploads are handed over as
    # they are buffered, before any copy can be fetched.
    assert {"export.frames", "export.uploads"} <= handed(tmp_path / "on" / "worker-on.log")
    assert handed(tmp_path / "off" / "worker-off.log") == set()
    assert events_of(kafka_bootstrap, on) == events_of(kafka_bootstrap, off)
    assert events_of(kafka_bootstrap, on)["export.completed"] == 1
    row_on, row_off = final_row(kafka_bootstrap, on), final_row(kafka_bootstrap, off)
    assert row_on["state"] == "done"
    assert shape(row_on) == shape(row_off)


def test_a_worker_killed_after_answering_leaves_its_job_done_once(
    kafka_bootstrap: str, archive: Path, tmp_path: Path
) -> None:
    proc, url = start(kafka_bootstrap, archive, tmp_path, "on")
    try:
        job_id = thumbnail(url, "0:00:04.480")
        row = final_row(kafka_bootstrap, job_id)
    finally:
        proc.send_signal(signal.SIGKILL)  # no drain, no commit of what is not committed yet
        stop_worker(proc)
    # A new worker takes the partitions over and gets every uncommitted event again.
    again, url = start(kafka_bootstrap, archive, tmp_path, "on")
    try:
        assert thumbnail(url, "0:00:04.480") == job_id  # the same body is a poll: done
        # Another job through the same partitions: the first one's events are behind it.
        thumbnail(url, "0:00:05.000")
    finally:
        stop_worker(again)
    assert events_of(kafka_bootstrap, job_id)["export.completed"] == 1
    final = final_row(kafka_bootstrap, job_id)
    assert row["state"] == "done" and shape(final) == shape(row)
