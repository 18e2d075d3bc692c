"""What the frames and transcode agents do with one task: decode it, run the stage, and
hand the result (or the failure) to the upload stage. Only the topic and step differ."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import schemas
from agents.deadletter import dead_letter
from agents.failures import as_export_error, fail_job
from pipeline.errors import ExportError
from pipeline.stages.events import request_from_event
from schemas import STATUS, UPLOADS

if TYPE_CHECKING:
    from pipeline.app import Pipeline
    from pipeline.stages.context import Publish, StageContext

Step = Callable[["StageContext", dict[str, Any], "Publish"], Awaitable[dict[str, Any]]]


async def handle_media_task(pipe: Pipeline, event: Any, topic: str, step: Step, stage: str) -> None:
    assert pipe.ctx is not None
    try:
        task = schemas.decode(topic, event.value).asdict()
        req = request_from_event(task["request"])
    except ExportError as e:
        await dead_letter(pipe, event, str(e), e)
        return

    async def publish(status: dict[str, Any]) -> None:
        await pipe.send(STATUS, req.job_id, status)

    try:
        upload = await step(pipe.ctx, task, publish)
    except Exception as e:  # every failure still ends in exactly one export.completed
        await fail_job(pipe, req, as_export_error(e, req.job_id), stage=stage)
        return
    await pipe.send(UPLOADS, req.job_id, upload)
