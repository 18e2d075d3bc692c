"""A timer on every worker that re-drives, then fails, jobs that stalled (see
pipeline/supervise.py for the rule).

Each worker looks only at the jobs of the status-table partitions it owns now: faust's
memory store keeps a revoked partition's rows, which are stale on this worker.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aiokafka.partitioner import DefaultPartitioner

import schemas
from agents.failures import finish_failed
from pipeline.errors import StageStalled
from pipeline.stages.events import status_event
from pipeline.supervise import SCAN_INTERVAL_S, Verdict, stalled_jobs
from schemas import REQUESTS, STATUS

if TYPE_CHECKING:
    from agents.pipe import Pipeline

log = logging.getLogger(__name__)
_PARTITIONER = DefaultPartitioner()


def register(pipe: Pipeline) -> None:
    @pipe.app.timer(SCAN_INTERVAL_S, name="supervisor")
    async def supervise_jobs() -> None:
        await scan(pipe, owned_partitions(pipe))


def owned_partitions(pipe: Pipeline) -> set[int]:
    return {tp.partition for tp in pipe.app.consumer.assignment() if tp.topic == STATUS}


def partition_of(job_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a job_id key (every topic's)."""
    every = list(range(partitions))
    return int(_PARTITIONER(job_id.encode(), every, every))


async def scan(pipe: Pipeline, owned: set[int]) -> list[Verdict]:
    assert pipe.ctx is not None
    n = pipe.settings.partitions
    rows: list[tuple[str, Any]] = [
        (job_id, row)
        for job_id, row in list(pipe.status.items())
        if partition_of(job_id, n) in owned
    ]
    verdicts = stalled_jobs(
        rows,
        now_ms=pipe.ctx.clock(),
        base_ms=pipe.settings.stage_timeout_ms,
        live_wait_ms=pipe.settings.live_wait_ms,
    )
    for verdict in verdicts:
        try:
            await act(pipe, verdict)
        except Exception:  # one job's trouble must not stop the scan of the others
            log.exception("supervisor: could not handle stalled job %s", verdict.job_id)
    return verdicts


async def act(pipe: Pipeline, verdict: Verdict) -> None:
    assert pipe.ctx is not None
    job_id = verdict.job_id
    req = schemas.convert(REQUESTS, verdict.request) if verdict.request is not None else None
    if verdict.action == "fail" or req is None:
        log.warning("job %s: %s; failing it", job_id, verdict.reason)
        await finish_failed(pipe, job_id, req, StageStalled(verdict.reason, obj=job_id))
        return
    log.warning("job %s: %s; re-driving it (attempt %d)", job_id, verdict.reason, req.attempt)
    # The status first: the row moves (and remembers the attempt), so the next scan gives
    # the re-driven job a whole timeout again.
    now = pipe.ctx.clock()
    update = status_event(job_id, verdict.state, at_ms=now, request=req)
    await pipe.send(STATUS, job_id, update, acked=True)
    await pipe.send(REQUESTS, job_id, req, acked=True)
