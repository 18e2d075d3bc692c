"""The join of a split clip: every chunk's video and facts from staging, concatenated with
the whole range's audio into the job's clip, plus its first frame, staged for the upload.

It runs where the last chunk finished: each chunk stage, once its own chunk is stored,
looks for every chunk's facts (``pipeline.stages.chunks.all_done``).  The output store is
read-after-write consistent (S3 since 2020, a local folder), so of two chunks finishing at
once at least one sees the other's; both may join, which is harmless: the join is a pure
function of the chunks, its keys are deterministic, and the upload stage publishes a job
once (a second upload task finds it completed).  A join that dies is repeated with its
chunk task's redelivery, which finds the chunks in place.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from pipeline.stages.chunks import ChunkFacts, chunk_count, chunk_keys
from pipeline.stages.context import Publish, StageContext
from pipeline.stages.events import facts, jsonable, status_event, upload_task
from pipeline.stages.media import stage_file, stage_image
from pipeline.storage import is_s3, split_s3

if TYPE_CHECKING:
    from pipeline.media.join import ChunkClip
    from pipeline.model import Resolution
    from pipeline.storage import OutputStore
    from schemas import StageTask, UploadTask


async def join_step(
    ctx: StageContext, task: StageTask, res: Resolution, publish: Publish
) -> UploadTask:
    """Join the chunks of ``task``'s plan into the clip; the job's upload task."""
    from pipeline.media import grab_thumbnail
    from pipeline.media.join import join_chunks

    req, chunk = task.request, task.chunk
    assert chunk is not None and req.video_key is not None
    start = ctx.clock()
    await publish(
        status_event(req.job_id, "transcoding", at_ms=start, stage="join", stage_start_ms=start)
    )
    work = ctx.work_dir / f"{req.job_id}-join"
    shutil.rmtree(work, ignore_errors=True)  # a repeated join starts clean
    work.mkdir(parents=True)
    try:
        told, clips = await _fetch_chunks(ctx, task, work)
        reader, _ = ctx.archive(req)
        options = ctx.settings.encode
        clip = await ctx.cpu(
            "transcode", join_chunks, reader, res, clips, work / "clip.mp4", options=options
        )
        thumb = await ctx.cpu("frame", grab_thumbnail, reader, res, work / "image.jpg")
        video = await ctx.io(
            stage_file,
            ctx.store,
            req.job_id,
            "video",
            clip.path,
            req.video_key,
            "video/mp4",
            facts(clip) | {"chunks": chunk_count(chunk)},
        )
        image = await stage_image(ctx, req, thumb)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    end = ctx.clock()
    transcode = {"start_ms": min(f.start_ms for f in told), "end_ms": end}
    timings = task.timings | {"transcode": transcode, "join": {"start_ms": start, "end_ms": end}}
    upload = upload_task(
        req,
        artifacts=[image, video],
        timings=timings,
        delivered_ms=int(clip.delivered_ms),
        missing_ms=int(clip.missing_ms),
        lack_length_ms=int(clip.missing_ms),
        gaps=[jsonable(g) for g in clip.gaps],
    )
    return msgspec.structs.replace(upload, chunk=chunk)


async def _fetch_chunks(
    ctx: StageContext, task: StageTask, work: Path
) -> tuple[list[ChunkFacts], list[ChunkClip]]:
    from pipeline.media.join import ChunkClip

    chunk = task.chunk
    assert chunk is not None
    told: list[ChunkFacts] = []
    clips: list[ChunkClip] = []
    for i in range(chunk_count(chunk)):
        video_key, facts_key = chunk_keys(task.job_id, chunk, i)
        raw = await ctx.io(ctx.store.blobs.read, ctx.store.location(facts_key))
        said = msgspec.json.decode(raw, type=ChunkFacts)
        path = await ctx.io(fetch_file, ctx.store, video_key, work / f"{i:04d}.mp4")
        told.append(said)
        clips.append(
            ChunkClip(
                path,
                said.first_frame_time,
                said.gap_list(),
                said.reencoded_frames,
                said.reorder_ticks,
            )
        )
    return told, clips


def fetch_file(store: OutputStore, key: str, dest: Path) -> Path:
    """A local path of a stored object: the file itself in a local store, else a download
    to ``dest`` (streamed to disk, not held in memory)."""
    location = store.location(key)
    if not is_s3(location):
        if not Path(location).is_file():
            store.blobs.read(location)  # raises SourceNotFound naming it
        return Path(location)
    bucket, obj = split_s3(location)

    def attempt() -> None:
        store.blobs.s3.download_file(bucket, obj, str(dest))

    store.blobs.call("reading", location, attempt)
    return dest
