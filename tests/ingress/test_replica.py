"""The status replica's waiting: a request waiting for one job wakes on that job's changes
only, and a status event folded at send time and again from Kafka leaves one row."""

from __future__ import annotations

import asyncio
from typing import Any

import schemas
from ingress.replica import StatusReplica
from pipeline.stages.events import status_event

JOB_A = "A" * 32
JOB_B = "B" * 32


def replica() -> StatusReplica:
    return StatusReplica("127.0.0.1:9", "changelog")  # never started: fed by hand


def report(job_id: str, state: Any, at_ms: int, **fields: Any) -> bytes:
    event = status_event(job_id, state, at_ms=at_ms, kind="thumbnail", **fields)
    return schemas.encode(schemas.STATUS, event)


def test_a_waiting_request_wakes_on_its_own_job_only() -> None:
    async def scenario() -> tuple[int, str | None]:
        rep = replica()
        checks = 0

        def done(row: dict[str, Any] | None) -> bool:
            nonlocal checks
            checks += 1
            return row is not None and row["state"] == "done"

        waiting = asyncio.create_task(rep.wait_for(JOB_A, done, timeout=60))
        await asyncio.sleep(0)
        for at in range(1, 11):  # another job's progress
            rep.fold_sent(report(JOB_B, "resolving", at))
            await asyncio.sleep(0)
        before = checks
        rep.fold_sent(report(JOB_A, "done", 20))
        row = await waiting
        return before, row["state"] if row else None

    before, state = asyncio.run(scenario())
    assert before == 1 and state == "done"  # checked once on entry, then on its own change


def test_a_waiter_that_times_out_leaves_nothing_behind() -> None:
    async def scenario() -> tuple[dict[str, Any] | None, int]:
        rep = replica()
        row = await rep.wait_final(JOB_A, timeout=0.01)
        return row, len(rep._waiters)

    assert asyncio.run(scenario()) == (None, 0)


def test_a_status_folded_at_send_and_again_from_kafka_is_one_row() -> None:
    rep = replica()
    events = [
        report(JOB_A, "accepted", 1, progress=0.0),
        report(JOB_A, "resolving", 2, stage="resolve", stage_start_ms=2),
        report(JOB_A, "resolving", 3, stage="resolve", stage_end_ms=3),
        report(JOB_A, "grabbing", 4, stage="frames", stage_start_ms=4),
        report(JOB_A, "done", 6),
    ]
    for value in events:
        rep.fold_sent(value)
    once = rep.get(JOB_A)
    for value in events:  # the Kafka copies, in the same order
        rep._fold(value)
    assert rep.get(JOB_A) == once and once is not None and once["state"] == "done"
