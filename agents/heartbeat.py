"""Heartbeats for the jobs a worker holds, so the supervisor re-drives only jobs nobody holds.

A job waiting behind others (for its partition's lock, for a transcode slot) reports no
progress, yet it is not lost.  While this worker holds a job's event (from taking it off the
stream until it is handled), a timer reports the job alive every quarter of the stage timeout
(a ``heartbeat`` status: it moves the row's ``updated_at_ms`` and nothing else).  A worker
that dies stops beating, and its jobs stall for the supervisor (agents/supervisor.py) to
re-drive.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pipeline.stages.events import status_event
from schemas import STATUS, job_id_hint

if TYPE_CHECKING:
    from agents.pipe import Pipeline

log = logging.getLogger(__name__)
STAGE = "heartbeat"
MAX_HELD_TIMEOUTS = 10


def interval_s(stage_timeout_ms: int) -> float:
    return max(1.0, stage_timeout_ms / 4000)


def register(pipe: Pipeline) -> None:
    @pipe.app.timer(interval_s(pipe.settings.stage_timeout_ms), name="heartbeat")
    async def beat_held_jobs() -> None:
        await beat(pipe)


@contextlib.contextmanager
def holding(held: Counter[str], event: Any) -> Iterator[None]:
    """Count the event's job as held by this worker while the block runs."""
    job_id = job_id_hint(None, event.key)
    if job_id is not None:
        held[job_id] += 1
    try:
        yield
    finally:
        if job_id is not None:
            held[job_id] -= 1
            if held[job_id] <= 0:
                del held[job_id]


async def beat(pipe: Pipeline) -> int:
    """Report every held job alive; returns how many."""
    assert pipe.ctx is not None
    now = pipe.ctx.clock()
    # A job held far longer than any queue should take (an actor stuck behind a lock of a
    # revoked partition) stops beating, so the supervisor re-drives it after all.
    since = pipe.held_since
    cap = MAX_HELD_TIMEOUTS * pipe.settings.stage_timeout_ms
    jobs = [j for j in pipe.held if now - since.setdefault(j, now) < cap]
    for gone in set(since) - set(pipe.held):
        del since[gone]
    for job_id in jobs:
        try:
            # "accepted" ranks lowest: the fold keeps the job's state and only moves
            # updated_at_ms (pipeline/jobs.py, advance).
            await pipe.send(
                STATUS, job_id, status_event(job_id, "accepted", at_ms=now, stage=STAGE)
            )
        except Exception:
            log.exception("heartbeat for job %s not sent", job_id)
    return len(jobs)
