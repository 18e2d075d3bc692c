"""export.uploads → final keys + metadata → export.completed (exactly one per job) + status."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import msgspec

import schemas
from agents.failures import as_export_error, finish_failed, refuse
from agents.guard import handle_guarded
from pipeline.errors import ExportError
from pipeline.stages.upload import discard_staging, upload_step
from schemas import COMPLETED, STATUS, UPLOADS

if TYPE_CHECKING:
    from pipeline.app import Pipeline

log = logging.getLogger(__name__)


def schemas_error(info: schemas.ErrorInfo) -> ExportError:
    from pipeline.jobs import error_from_dict

    return error_from_dict(msgspec.to_builtins(info))


def register(pipe: Pipeline) -> None:
    @pipe.app.agent(pipe.topic(UPLOADS), name="upload", concurrency=4)
    async def upload_agent(stream: Any) -> None:
        async for event in stream.events():
            await handle_guarded(pipe, event, UPLOADS, handle)


async def handle(pipe: Pipeline, event: Any) -> None:
    ctx = pipe.ctx
    assert ctx is not None
    try:
        record = schemas.decode(UPLOADS, event.value)
    except ExportError as e:
        await refuse(pipe, event, UPLOADS, e)
        return
    task = msgspec.to_builtins(record)
    job_id = record.job_id
    if pipe.completed.get(job_id) is not None:
        # A redelivery or a re-run stage after the job finished: its outputs already sit at
        # their deterministic keys; only drop the staging copies this duplicate left behind.
        await ctx.io(discard_staging, ctx.store, task)
        return

    async def publish(status: dict[str, Any]) -> None:
        await pipe.send(STATUS, job_id, status)

    if record.request is None:  # a job whose own event was refused: only its failure is known
        assert record.error is not None
        await finish_failed(pipe, job_id, None, schemas_error(record.error))
        return
    try:
        result = await upload_step(ctx, task, publish)
    except Exception as e:  # the job still ends, failed, with one completed event
        await finish_failed(pipe, job_id, record.request, as_export_error(e, job_id))
        return
    # Publish (acknowledged) before recording: a crash in between repeats the completed
    # event on redelivery (at-least-once) but can never lose it.
    await pipe.send(COMPLETED, job_id, result.completed, acked=True)
    await pipe.send(STATUS, job_id, result.status, acked=True)
    pipe.completed[job_id] = {"outcome": result.completed["outcome"], "at_ms": ctx.clock()}
    log.info("job %s %s", job_id, result.completed["outcome"])
