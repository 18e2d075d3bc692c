"""Whole jobs against S3 through the fault-injecting proxy: with transient faults every job
succeeds; with every request failing every job still ends (failed, -6 naming an object),
none hangs.  The archive and the outputs are both on S3 (moto behind the proxy)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import schemas
from agents import frames, resolve, transcode, upload
from pipeline import stages
from pipeline.legacy.request import parse_export_body
from pipeline.settings import Settings
from pipeline.storage import Blobs, OutputStore
from pipeline.storage_retry import RetryPolicy
from pipeline.synthetic import ArchiveSpec, write_dash
from tests.agents.fakes import FakePipe, event
from tests.fixtures.fault_proxy import FaultMix, FaultProxy
from tests.fixtures.services import S3Server

pytestmark = pytest.mark.integration

SPEC = ArchiveSpec(seconds=4.0)
LIVE_PATH = "mp4/cam/1/stream.mpd"
# Tiny pauses (botocore's own backoff cannot be shrunk, so its tries stay few); the outcome is
# decided by the attempt bounds, never by the machine's speed.
PATIENT = RetryPolicy(
    request_attempts=6, attempts=6, base_delay_s=0.001, max_delay_s=0.005, budget_s=600
)
FAST = RetryPolicy(
    request_attempts=2, attempts=2, base_delay_s=0.001, max_delay_s=0.005, budget_s=600
)
HEAVY = ("slowdown", "internal", "reset", "truncate")


@pytest.fixture
def s3_pipe(
    tmp_path: Path, s3_server: S3Server, fault_proxy: FaultProxy
) -> Iterator[tuple[FakePipe, Settings]]:
    bucket = f"jobs-{uuid.uuid4().hex[:12]}"
    client: Any = s3_server.client()
    client.create_bucket(Bucket=bucket)
    local = tmp_path / "archive"
    write_dash(local / Path(LIVE_PATH).parent, SPEC)
    for path in local.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), bucket, f"arch/{path.relative_to(local)}")
    client.close()
    settings = Settings(
        data_dir=tmp_path / "data",
        archive_url=f"s3://{bucket}/arch",
        output_url=f"s3://{bucket}/out",
        s3_endpoint_url=fault_proxy.endpoint_url,
    )
    pipe = FakePipe(settings=settings, ctx=stages.StageContext.from_settings(settings))
    yield pipe, settings
    pipe.ctx.close()


def _use(pipe: FakePipe, proxy: FaultProxy, policy: RetryPolicy) -> None:
    """Storage through the proxy with ``policy`` (the default one waits for real)."""
    blobs = Blobs(proxy.endpoint_url, retry=policy)
    pipe.ctx.store = OutputStore(pipe.settings.output_url, blobs)
    pipe.ctx._readers = {pipe.settings.s3_region: blobs}


def _run_job(pipe: FakePipe, body: dict[str, Any]) -> dict[str, Any]:
    """One job through resolve, its stage and upload; its export.completed event."""
    req = parse_export_body(body, pipe.settings, now_ms=1)
    job = req.job_id
    asyncio.run(resolve.handle(pipe, event(schemas.REQUESTS, req.to_dict(), job)))
    for topic, agent in ((schemas.FRAMES, frames), (schemas.TRANSCODES, transcode)):
        for key, task in pipe.sent[topic]:
            if key == job:
                asyncio.run(agent.handle(pipe, event(topic, task, job)))
    for key, task in list(pipe.sent[schemas.UPLOADS]):
        if key == job:
            asyncio.run(upload.handle(pipe, event(schemas.UPLOADS, task, job)))
    (completed,) = [c for k, c in pipe.sent[schemas.COMPLETED] if k == job]
    return completed


def _bodies() -> list[dict[str, Any]]:
    assert SPEC.epoch_ms is not None
    start = SPEC.epoch_ms + 400
    thumb = {"StartPos": start, "Duration": 1000, "LivePath": LIVE_PATH}
    clip = {**thumb, "FetchMedia": True, "export_type": 0, "Duration": 2000}
    return [thumb, clip]


def test_with_transient_faults_every_job_succeeds(
    s3_pipe: tuple[FakePipe, Settings], fault_proxy: FaultProxy
) -> None:
    pipe, _ = s3_pipe
    _use(pipe, fault_proxy, PATIENT)
    fault_proxy.set_mix(FaultMix(rate=0.3, seed=11))
    for body in _bodies():
        completed = _run_job(pipe, body)
        assert completed["outcome"] == "ok", completed["error"]
    faults = [s.fault for s in fault_proxy.seen() if s.fault != "forward"]
    assert len(set(faults)) >= 4, faults  # the jobs did meet the faults


def test_with_every_request_failing_every_job_ends_naming_the_object(
    s3_pipe: tuple[FakePipe, Settings], fault_proxy: FaultProxy
) -> None:
    pipe, _ = s3_pipe
    _use(pipe, fault_proxy, FAST)
    fault_proxy.set_mix(FaultMix(rate=1.0, kinds=HEAVY, seed=5))
    for body in _bodies():
        completed = _run_job(pipe, body)
        assert completed["outcome"] == "failed"
        assert completed["error"]["code"] == -6, completed["error"]
        assert str(completed["error"]["object"]).startswith("s3://"), completed["error"]
    states = [s["state"] for _, s in pipe.sent[schemas.STATUS]]
    assert states.count("failed") == 2
