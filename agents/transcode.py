"""export.transcodes → the clip + its first frame → export.uploads.

Bounded twice: one transcode at a time per partition (a lock per partition number), so the
cluster never runs more transcodes than export.transcodes has partitions; the stage's
semaphore caps one worker at ``max_transcodes`` however many partitions it owns.

Not faust's ``isolated_partitions``: when a worker took over a ``kill -9``ed worker's
partitions, some of their events were never processed (jobs stuck in "transcoding" for good;
2 of 4 runs of the six-job case in tests/ingress/test_crash.py).  A shared stream with one
actor per partition and a lock per partition gives the same bound without that machinery.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from agents.guard import handle_guarded
from agents.heartbeat import holding
from agents.media_task import handle_media_task
from pipeline.stages.media import transcode_step
from schemas import TRANSCODES

if TYPE_CHECKING:
    from agents.pipe import Pipeline


MAX_ACTORS = 256


def register(pipe: Pipeline) -> None:
    locks: dict[int, asyncio.Lock] = {}

    # An actor for every job a worker may be asked to queue, not one per partition: a job
    # waits in an actor (behind its partition's lock, counted as held, so it heartbeats)
    # rather than unseen in faust's buffer, where the supervisor would take it for lost.
    actors = max(pipe.settings.partitions, min(pipe.settings.max_pending, MAX_ACTORS))

    @pipe.app.agent(pipe.topic(TRANSCODES), name="transcode", concurrency=actors)
    async def transcode_agent(stream: Any) -> None:
        async for event in stream.events():
            # Actors take events in order, and a Lock wakes its waiters in order: one
            # partition's events still run one after the other, in offset order.
            lock = locks.setdefault(event.message.partition, asyncio.Lock())
            with holding(pipe.held, event):
                async with lock:
                    await handle_guarded(pipe, event, TRANSCODES, handle)


async def handle(pipe: Pipeline, event: Any) -> None:
    await handle_media_task(pipe, event, TRANSCODES, transcode_step, stage="transcode")
