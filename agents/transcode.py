"""export.transcodes → the clip + its first frame → export.uploads.

Bounded twice: one transcode at a time per partition (a lock per partition number), so the
cluster never runs more transcodes than export.transcodes has partitions; the stage's
semaphore caps one worker at ``max_transcodes`` however many partitions it owns.

A long type 1/2 clip is split (agents/chunks.py): its own task only sends chunk tasks, so
it does not wait for the lock; each chunk task is one transcode under its partition's lock.

Not faust's ``isolated_partitions``: when a worker took over a ``kill -9``ed worker's
partitions, some of their events were never processed (jobs stuck in "transcoding" for good;
2 of 4 runs of the six-job case in tests/ingress/test_crash.py).  A shared stream with one
actor per partition and a lock per partition gives the same bound without that machinery.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Any

import schemas
from agents.chunks import fan_out, run_chunk, to_fan_out
from agents.guard import handle_guarded
from agents.heartbeat import holding
from agents.media_task import handle_media_task
from pipeline.errors import ExportError
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
                if to_fan_out(pipe, event) is not None:
                    await handle_guarded(pipe, event, TRANSCODES, functools.partial(split, lock))
                    continue
                async with lock:
                    await handle_guarded(pipe, event, TRANSCODES, handle)


async def split(lock: asyncio.Lock, pipe: Pipeline, event: Any) -> None:
    whole = to_fan_out(pipe, event)
    if whole is not None and await fan_out(pipe, whole):
        return
    async with lock:  # not split after all: the whole clip, as any other
        await handle(pipe, event)


async def handle(pipe: Pipeline, event: Any) -> None:
    try:
        record = schemas.decode(TRANSCODES, event.value)
    except ExportError:
        record = None  # refused by handle_media_task, which decodes it again
    if record is not None and record.chunk is not None:
        await run_chunk(pipe, record)
        return
    await handle_media_task(pipe, event, TRANSCODES, transcode_step, stage="transcode")
