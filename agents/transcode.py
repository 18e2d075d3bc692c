"""export.transcodes → the clip + its first frame → export.uploads.

Bounded twice: ``isolated_partitions`` gives every assigned partition its own actor that
handles one event at a time, so the cluster never runs more transcodes than export.transcodes
has partitions; the stage's semaphore caps one worker at ``max_transcodes`` however many
partitions it owns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agents.media_task import handle_media_task
from pipeline.stages.media import transcode_step
from schemas import TRANSCODES

if TYPE_CHECKING:
    from pipeline.app import Pipeline


def register(pipe: Pipeline) -> None:
    @pipe.app.agent(pipe.topic(TRANSCODES), name="transcode", isolated_partitions=True)
    async def transcode_agent(stream: Any) -> None:
        async for event in stream.events():
            await handle(pipe, event)


async def handle(pipe: Pipeline, event: Any) -> None:
    await handle_media_task(pipe, event, TRANSCODES, transcode_step, stage="transcode")
