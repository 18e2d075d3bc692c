"""Logs an operator reads: one line per job state change at the default level, faust's
tables only at debug, and EXPORT_LOG_FORMAT=json for machines.

The set-up runs in a fresh interpreter (``_setup_logging`` replaces the root handlers, which
pytest's own log capture sits on)."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

import schemas
from agents import status
from pipeline import stages
from pipeline.settings import Settings
from tests.agents.fakes import FakePipe, event

JOB = "C" * 32
ROOT = Path(__file__).resolve().parents[2]

# What a running worker logs, one line of each kind: ours, faust's, aiokafka's, the access log.
_EMIT = """
import logging, sys
from agents.status import log_state_change
from pipeline.jobs import JobStatus
from service.serve import _setup_logging
_setup_logging(sys.argv[1], sys.argv[2])
old = JobStatus(job_id="C" * 32, kind="media", state="transcoding", state_since_ms=1000)
new = JobStatus(job_id="C" * 32, kind="media", state="uploading", state_since_ms=4500)
log_state_change(old, new)
logging.getLogger("faust.worker").info("[^Worker]: Starting...")
logging.getLogger("faust.tables.recovery").info("| table | partition | offset |")
logging.getLogger("aiokafka.consumer.group_coordinator").info("Joined group")
logging.getLogger("aiohttp.access").info("127.0.0.1 GET /healthz 200")
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("ingress.http").exception("unexpected error answering GET /export")
"""


def _emit(level: str, log_format: str = "text") -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", _EMIT, level, log_format],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert proc.stdout == ""  # stdout carries the ready line only
    return proc.stderr.splitlines()


def _fold(pipe: FakePipe, update: schemas.StatusEvent) -> None:
    asyncio.run(status.handle(pipe, event(schemas.STATUS, update, JOB)))  # type: ignore[arg-type]


def test_a_job_logs_one_line_per_state_change_with_stage_ms_and_outcome(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pipe = FakePipe(settings=Settings(data_dir=tmp_path))
    updates = [
        stages.status_event(JOB, "accepted", at_ms=1000, kind="media"),
        stages.status_event(JOB, "accepted", at_ms=1000, kind="media"),  # redelivered
        stages.status_event(JOB, "resolving", at_ms=1200, stage="resolve", stage_start_ms=1200),
        stages.status_event(JOB, "resolving", at_ms=1500, stage="resolve", stage_end_ms=1500),
        stages.status_event(JOB, "transcoding", at_ms=1500, progress=0.5),
        stages.status_event(JOB, "transcoding", at_ms=2500, progress=0.9),  # progress only
        stages.status_event(
            JOB, "failed", at_ms=4000, error={"type": "MediaError", "code": -5, "message": "bad"}
        ),
        stages.status_event(JOB, "done", at_ms=4100),  # after failed: final already
    ]
    with caplog.at_level(logging.INFO, logger="agents.status"):
        for update in updates:
            _fold(pipe, update)
    lines = [r for r in caplog.records if r.name == "agents.status"]
    assert [r.getMessage() for r in lines] == [
        f"job {JOB} outcome=accepted",
        f"job {JOB} stage=accepted ms=200 outcome=resolving",
        f"job {JOB} stage=resolving ms=300 outcome=transcoding",
        f"job {JOB} stage=transcoding ms=2500 outcome=failed error_code=-5",
    ]
    # the same facts as record attributes, which the JSON log turns into keys
    first, moved = vars(lines[0]), vars(lines[2])
    assert (first["job_id"], first["outcome"], "stage" in first) == (JOB, "accepted", False)
    fields = (moved["job_id"], moved["stage"], moved["ms"], moved["outcome"])
    assert fields == (JOB, "resolving", 300, "transcoding")
    assert vars(lines[3])["error_code"] == -5
    assert [r.levelname for r in lines] == ["INFO", "INFO", "INFO", "WARNING"]


def test_the_default_level_shows_job_lines_and_hides_faust_and_the_access_log() -> None:
    lines = _emit("warning")
    (job,) = [line for line in lines if "agents.status" in line]
    assert job.endswith(
        f"INFO agents.status: job {JOB} stage=transcoding ms=3500 outcome=uploading"
    )
    assert not any(name in line for line in lines for name in ("faust", "aiokafka", "access"))
    assert any("ZeroDivisionError" in line for line in lines)  # errors with their traceback


def test_info_adds_the_access_log_and_only_debug_shows_faust_tables() -> None:
    info = _emit("info")
    assert any("aiohttp.access" in line for line in info)
    assert not any("faust" in line or "aiokafka" in line for line in info)
    debug = _emit("debug")
    assert any("| table | partition | offset |" in line for line in debug)
    assert any("Joined group" in line for line in debug)


def test_json_format_writes_one_object_per_line_with_the_job_fields() -> None:
    lines = _emit("warning", "json")
    objects = [json.loads(line) for line in lines]  # every line is one JSON object
    job = next(o for o in objects if o["logger"] == "agents.status")
    assert job["message"] == f"job {JOB} stage=transcoding ms=3500 outcome=uploading"
    assert (job["level"], job["job_id"], job["stage"], job["ms"]) == (
        "INFO",
        JOB,
        "transcoding",
        3500,
    )
    assert job["outcome"] == "uploading"
    assert job["ts"].endswith("+00:00")  # ISO 8601, UTC
    error = next(o for o in objects if o["logger"] == "ingress.http")
    assert error["level"] == "ERROR" and "ZeroDivisionError" in error["exc_info"]
