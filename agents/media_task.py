"""What the frames and transcode agents do with one task: decode it, run the stage, and
hand the result (or the failure) to the upload stage. Only the topic and step differ."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import schemas
from agents.failures import as_export_error, fail_job, refuse
from pipeline.errors import ExportError
from schemas import STATUS, UPLOADS, StatusEvent

if TYPE_CHECKING:
    from agents.pipe import Pipeline
    from pipeline.stages.context import Publish, StageContext
    from schemas import StageTask, UploadTask

Step = Callable[["StageContext", "StageTask", "Publish"], Awaitable["UploadTask"]]


async def handle_media_task(pipe: Pipeline, event: Any, topic: str, step: Step, stage: str) -> None:
    assert pipe.ctx is not None
    try:
        record = schemas.decode(topic, event.value)
    except ExportError as e:
        await refuse(pipe, event, topic, e)
        return
    req = record.request
    if pipe.completed.get(req.job_id) is not None:
        return  # a re-driven or redelivered task of a job that has ended: nothing to do

    async def publish(status: StatusEvent) -> None:
        await pipe.send(STATUS, req.job_id, status)

    try:
        upload = await step(pipe.ctx, record, publish)
    except Exception as e:  # every failure still ends in exactly one export.completed
        await fail_job(pipe, req, as_export_error(e, req.job_id), stage=stage)
        return
    await pipe.send(UPLOADS, req.job_id, upload)
