"""export.uploads → final keys + metadata → export.completed (exactly one per job) + status."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import msgspec

import schemas
from agents.failures import as_export_error, complete, finish_failed, refuse
from agents.guard import handle_guarded
from agents.heartbeat import holding
from pipeline.errors import ExportError
from pipeline.stages.chunks import discard_chunks
from pipeline.stages.upload import discard_staging, final_status, upload_step
from schemas import STATUS, UPLOADS, StatusEvent

if TYPE_CHECKING:
    from agents.pipe import Pipeline

log = logging.getLogger(__name__)


def schemas_error(info: schemas.ErrorInfo) -> ExportError:
    from pipeline.jobs import error_from_dict

    return error_from_dict(msgspec.to_builtins(info))


def register(pipe: Pipeline) -> None:
    # One upload at a time per partition: "not completed yet?" and the completion write must
    # not interleave for two deliveries of one job (seen after a rebalance: two actors both
    # passed the check and published twice).  Partitions still run in parallel.
    locks: dict[int, asyncio.Lock] = {}

    async def deliver(event: Any) -> None:
        lock = locks.setdefault(event.message.partition, asyncio.Lock())
        with holding(pipe.held, event):
            async with lock:
                await handle_guarded(pipe, event, UPLOADS, handle)

    pipe.local.consumer(UPLOADS, deliver)

    @pipe.app.agent(pipe.topic(UPLOADS), name="upload", concurrency=4)
    async def upload_agent(stream: Any) -> None:
        async for event in stream.events():
            await pipe.local.from_kafka(event, deliver)


async def handle(pipe: Pipeline, event: Any) -> None:
    ctx = pipe.ctx
    assert ctx is not None
    try:
        record = schemas.decode(UPLOADS, event.value)
    except ExportError as e:
        await refuse(pipe, event, UPLOADS, e)
        return
    job_id = record.job_id
    done = pipe.completed.get(job_id)
    if done is not None:
        # A redelivery or a re-run stage after the job finished: its outputs already sit at
        # their deterministic keys; drop the staging copies this duplicate left behind, and
        # say the final status again (a crash may have come between the two writes).
        await ctx.io(discard_staging, ctx.store, record)
        await drop_chunks(pipe, record)
        final = final_status(schemas.convert(schemas.COMPLETED, done))
        await pipe.send(STATUS, job_id, final, acked=True)
        return

    async def publish(status: StatusEvent) -> None:
        await pipe.send(STATUS, job_id, status)

    if record.request is None:  # a job whose own event was refused: only its failure is known
        assert record.error is not None
        await finish_failed(pipe, job_id, None, schemas_error(record.error))
        return
    try:
        result = await upload_step(ctx, record, publish)
    except Exception as e:  # the job still ends, failed, with one completed event
        await finish_failed(pipe, job_id, record.request, as_export_error(e, job_id))
        await drop_chunks(pipe, record)
        return
    await complete(pipe, job_id, result.completed, result.status, redelivered=True)
    await drop_chunks(pipe, record)


async def drop_chunks(pipe: Pipeline, record: schemas.UploadTask) -> None:
    """A joined clip's chunks, once its job has ended (best effort, like any staging)."""
    if record.chunk is not None:
        assert pipe.ctx is not None
        await pipe.ctx.io(discard_chunks, pipe.ctx.store, record.job_id, record.chunk)
