"""export.transcodes → the clip + its first frame → export.uploads.

Bounded twice: ``isolated_partitions`` gives every assigned partition its own actor that
handles one event at a time, so the cluster never runs more transcodes than export.transcodes
has partitions; the stage's semaphore caps one worker at ``max_transcodes`` however many
partitions it owns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import schemas
from agents.deadletter import dead_letter
from agents.failures import as_export_error, fail_job
from pipeline.errors import ExportError
from pipeline.stages.events import request_from_event
from pipeline.stages.media import transcode_step
from schemas import STATUS, TRANSCODES, UPLOADS

if TYPE_CHECKING:
    from pipeline.app import Pipeline


def register(pipe: Pipeline) -> None:
    @pipe.app.agent(pipe.topic(TRANSCODES), name="transcode", isolated_partitions=True)
    async def transcode_agent(stream: Any) -> None:
        async for event in stream.events():
            await handle(pipe, event)


async def handle(pipe: Pipeline, event: Any) -> None:
    assert pipe.ctx is not None
    try:
        task = schemas.decode(TRANSCODES, event.value).asdict()
        req = request_from_event(task["request"])
    except ExportError as e:
        await dead_letter(pipe, event, str(e), e)
        return

    async def publish(status: dict[str, Any]) -> None:
        await pipe.send(STATUS, req.job_id, status)

    try:
        upload = await transcode_step(pipe.ctx, task, publish)
    except Exception as e:
        await fail_job(pipe, req, as_export_error(e, req.job_id), stage="transcode")
        return
    await pipe.send(UPLOADS, req.job_id, upload)
