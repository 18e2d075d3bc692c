"""Split clips on export.transcodes: fan a job out into chunk tasks, run one chunk, and
join the chunks where the last one finishes (pipeline/stages/chunks.py, join.py).

The job's own task (keyed by job_id) is fanned out without waiting for its partition's
lock: it only resolves and sends, and must not wait behind a transcode of another job.
Chunk tasks are keyed ``<job_id>/<n>`` (:func:`chunk_key`) so that chunk ``i`` lands on
the partition after the job's by ``i``: consecutive chunks on distinct partitions, whoever
owns them.  Order among a job's chunks does not matter (each is idempotent, the join waits
for all), so the rule "every event keyed by job_id" is not needed for them; everything a
chunk sends (status, the upload task) is keyed by job_id again.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import TYPE_CHECKING, Any

import schemas
from agents.failures import as_export_error, fail_job
from agents.supervisor import partition_of
from pipeline.errors import ExportError
from pipeline.stages.chunks import (
    all_done,
    chunk_step,
    delivered,
    discard_chunks,
    split_step,
    wants_split,
)
from pipeline.stages.join import join_step
from schemas import STATUS, TRANSCODES, UPLOADS, StageTask, StatusEvent

if TYPE_CHECKING:
    from agents.pipe import Pipeline
    from pipeline.stages.context import Publish

log = logging.getLogger(__name__)


def chunk_key(job_id: str, index: int, partitions: int) -> str:
    """A key Kafka's default partitioner sends to partition (job's + ``index``) mod
    ``partitions``: ``<job_id>/<index>``, with a ``.<salt>`` tried until it hashes there
    (about ``partitions`` tries; the same murmur2 rule as the Java client's)."""
    target = (partition_of(job_id, partitions) + index) % partitions
    for salt in itertools.count():
        key = f"{job_id}/{index}" + (f".{salt}" if salt else "")
        if partition_of(key, partitions) == target:
            return key
    raise AssertionError("unreachable")  # pragma: no cover


def to_fan_out(pipe: Pipeline, event: Any) -> StageTask | None:
    """The job's task when this event is one to split (no chunk yet, long enough)."""
    try:
        record: StageTask = schemas.decode(TRANSCODES, event.value)
    except ExportError:
        return None  # refused on the ordinary path
    if record.chunk is None and wants_split(pipe.settings, record.request):
        return record
    return None


async def fan_out(pipe: Pipeline, task: StageTask) -> bool:
    """Send the chunk tasks of ``task``; False when its range is not split after all."""
    assert pipe.ctx is not None
    req = task.request
    if pipe.completed.get(req.job_id) is not None:
        return True  # a re-run of a job that has ended
    if await pipe.ctx.io(delivered, pipe.ctx.store, req):
        return True
    try:
        chunks = await split_step(pipe.ctx, task, _publisher(pipe, req.job_id))
    except Exception as e:  # every failure still ends in exactly one export.completed
        await fail_job(pipe, req, as_export_error(e, req.job_id), stage="transcode")
        return True
    if not chunks:
        return False
    n = pipe.settings.partitions
    # Acked: the job's own event is committed once this returns, and chunk tasks lost in
    # a buffer would leave the job to the supervisor.
    await asyncio.gather(
        *(
            pipe.send(TRANSCODES, chunk_key(req.job_id, i, n), c, acked=True)
            for i, c in enumerate(chunks)
        )
    )
    log.info("job %s: split into %d chunks", req.job_id, len(chunks))
    return True


async def run_chunk(pipe: Pipeline, task: StageTask) -> None:
    """Transcode one chunk; join and hand the clip to the upload stage if it was the last."""
    ctx = pipe.ctx
    assert ctx is not None and task.chunk is not None
    req, chunk = task.request, task.chunk
    if pipe.completed.get(req.job_id) is not None:
        return  # only known here when this worker also holds the job's own partition
    if await ctx.io(delivered, ctx.store, req):
        return  # ...and this is how a worker that does not hold it knows
    publish = _publisher(pipe, req.job_id)
    try:
        res, encoded = await chunk_step(ctx, task, publish)
        how = "transcoded" if encoded else "found done"
        log.info("job %s: chunk %d of %d %s", req.job_id, chunk.index, len(chunk.bounds) - 1, how)
        if not await ctx.io(all_done, ctx.store, req.job_id, chunk):
            return
        upload = await join_step(ctx, task, res, publish)
    except Exception as e:
        await fail_job(pipe, req, as_export_error(e, req.job_id), stage="transcode")
        await ctx.io(discard_chunks, ctx.store, req.job_id, chunk)
        return
    # The chunks stay until the upload stage has published the clip (it drops them then):
    # a chunk task repeated meanwhile finds its chunk done, one repeated later the clip.
    await pipe.send(UPLOADS, req.job_id, upload)


def _publisher(pipe: Pipeline, job_id: str) -> Publish:
    async def publish(status: StatusEvent) -> None:
        await pipe.send(STATUS, job_id, status)

    return publish
