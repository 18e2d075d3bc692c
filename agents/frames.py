"""export.frames → grab the thumbnail (bounded by max_frame_grabs) → export.uploads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import schemas
from agents.deadletter import dead_letter
from agents.failures import as_export_error, fail_job
from pipeline.errors import ExportError
from pipeline.stages.events import request_from_event
from pipeline.stages.media import frame_step
from schemas import FRAMES, STATUS, UPLOADS

if TYPE_CHECKING:
    from pipeline.app import Pipeline


def register(pipe: Pipeline) -> None:
    concurrency = pipe.settings.max_frame_grabs

    @pipe.app.agent(pipe.topic(FRAMES), name="frames", concurrency=concurrency)
    async def frames_agent(stream: Any) -> None:
        async for event in stream.events():
            await handle(pipe, event)


async def handle(pipe: Pipeline, event: Any) -> None:
    assert pipe.ctx is not None
    try:
        task = schemas.decode(FRAMES, event.value).asdict()
        req = request_from_event(task["request"])
    except ExportError as e:
        await dead_letter(pipe, event, str(e), e)
        return

    async def publish(status: dict[str, Any]) -> None:
        await pipe.send(STATUS, req.job_id, status)

    try:
        upload = await frame_step(pipe.ctx, task, publish)
    except Exception as e:
        await fail_job(pipe, req, as_export_error(e, req.job_id), stage="frames")
        return
    await pipe.send(UPLOADS, req.job_id, upload)
