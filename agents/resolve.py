"""export.requests → resolve (with the bounded live-edge wait) → export.frames/transcodes."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import schemas
from agents.failures import as_export_error, fail_job, refuse
from agents.guard import handle_guarded
from agents.heartbeat import holding
from pipeline.errors import ExportError
from pipeline.stages.resolve import resolve_step
from schemas import REQUESTS, STATUS, StatusEvent

if TYPE_CHECKING:
    from agents.pipe import Pipeline

log = logging.getLogger(__name__)

# Jobs waiting for a live edge sleep in the resolve agent; several per worker so one waiting
# job does not hold up the others on its partition (offsets still commit in order).
CONCURRENCY = 8


def register(pipe: Pipeline) -> None:
    async def deliver(event: Any) -> None:
        with holding(pipe.held, event):
            await handle_guarded(pipe, event, REQUESTS, handle)

    # The offset tells a redelivery from a second event of the job (handle): wait for it.
    pipe.local.consumer(REQUESTS, deliver, needs_offset=True)

    @pipe.app.agent(pipe.topic(REQUESTS), name="resolve", concurrency=CONCURRENCY)
    async def resolve_agent(stream: Any) -> None:
        async for event in stream.events():
            await pipe.local.from_kafka(event, deliver)


async def handle(pipe: Pipeline, event: Any) -> None:
    assert pipe.ctx is not None
    try:
        req = schemas.decode(REQUESTS, event.value)
    except ExportError as e:
        await refuse(pipe, event, REQUESTS, e)
        return
    # One job per job_id: another event for the same job (a second ingress, a search
    # service re-publishing) is a poll, never a second job.  The same event coming back
    # (a crash before its offset was committed) is processed again, so it is never lost,
    # and so is a re-drive by the supervisor (a higher attempt).
    here = [event.message.partition, event.message.offset]
    first = pipe.seen.get(req.job_id)
    if first is not None and first.get("at") != here and req.attempt <= first.get("attempt", 0):
        return
    pipe.seen[req.job_id] = {"at": here, "ms": pipe.ctx.clock(), "attempt": req.attempt}

    async def publish(status: StatusEvent) -> None:
        await pipe.send(STATUS, req.job_id, status)

    try:
        routed = await resolve_step(pipe.ctx, req, publish)
    except Exception as e:  # every failure still ends in exactly one export.completed
        await fail_job(pipe, req, as_export_error(e, req.job_id), stage="resolve")
        return
    await pipe.send(routed.topic, req.job_id, routed.task)
    log.debug("resolved %s -> %s", req.job_id, routed.topic)
