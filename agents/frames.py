"""export.frames → grab the thumbnail (bounded by max_frame_grabs) → export.uploads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agents.guard import handle_guarded
from agents.heartbeat import holding
from agents.media_task import handle_media_task
from pipeline.stages.media import frame_step
from schemas import FRAMES

if TYPE_CHECKING:
    from agents.pipe import Pipeline


def register(pipe: Pipeline) -> None:
    concurrency = pipe.settings.max_frame_grabs

    async def deliver(event: Any) -> None:
        with holding(pipe.held, event):
            await handle_guarded(pipe, event, FRAMES, handle)

    pipe.local.consumer(FRAMES, deliver)

    @pipe.app.agent(pipe.topic(FRAMES), name="frames", concurrency=concurrency)
    async def frames_agent(stream: Any) -> None:
        async for event in stream.events():
            await pipe.local.from_kafka(event, deliver)


async def handle(pipe: Pipeline, event: Any) -> None:
    await handle_media_task(pipe, event, FRAMES, frame_step, stage="frames")
