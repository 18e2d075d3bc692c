"""The frame and transcode stages: PyAV work in the executor behind the per-worker slots,
results written to ``staging/<job_id>/...`` in the output store for the upload stage."""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import ExportError
from pipeline.stages.context import Publish, StageContext
from pipeline.stages.events import facts, jsonable, status_event, upload_task
from pipeline.stages.resolve import resolve_recorded
from pipeline.storage import OutputStore
from schemas import Artifact

if TYPE_CHECKING:
    from schemas import StageTask, UploadTask
    from schemas.events import ContentType, Role
    from schemas.request import ExportRequest

PROGRESS_EVERY = 0.1  # publish transcode progress in steps of this fraction...
PROGRESS_MIN_S = 1.0  # ...or at least this often


def staging_key(job_id: str, name: str) -> str:
    return f"staging/{job_id}/{name}"


def stage_file(
    store: OutputStore,
    job_id: str,
    role: Role,
    path: Path,
    final_key: str,
    content_type: ContentType,
    file_facts: dict[str, Any],
) -> Artifact:
    """Put a result into staging; return its Artifact entry for the upload task."""
    key = staging_key(job_id, role + Path(final_key).suffix)
    obj = store.put_file(key, path, content_type)
    return Artifact(
        role=role,
        staging_key=obj.key,
        final_key=final_key,
        content_type=content_type,
        size=obj.size,
        sha256=obj.sha256,
        facts=file_facts,
    )


def _work_dir(ctx: StageContext, job_id: str, stage: str) -> Path:
    path = ctx.work_dir / f"{job_id}-{stage}"
    shutil.rmtree(path, ignore_errors=True)  # a redelivery starts clean
    path.mkdir(parents=True)
    return path


async def frame_step(ctx: StageContext, task: StageTask, publish: Publish) -> UploadTask:
    """Thumbnail job: the JPEG of the first frame at or after the start, to staging."""
    from pipeline.media import grab_thumbnail

    req = task.request
    start = ctx.clock()
    await publish(
        status_event(req.job_id, "grabbing", at_ms=start, stage="frames", stage_start_ms=start)
    )
    work = _work_dir(ctx, req.job_id, "frames")
    try:
        res = await resolve_recorded(ctx, req)
        reader, _ = ctx.archive(req)
        frames = ctx.frames(req.source)
        thumb = await ctx.cpu(
            "frame", grab_thumbnail, reader, res, work / "image.jpg", frames=frames
        )
        art = await stage_image(ctx, req, thumb)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    end = ctx.clock()
    timings = task.timings | {"frames": {"start_ms": start, "end_ms": end}}
    return upload_task(req, artifacts=[art], timings=timings, lack_length_ms=task.lack_length_ms)


async def stage_image(ctx: StageContext, req: ExportRequest, thumb: Any) -> Artifact:
    """A job's JPEG into staging (the frame, transcode and join stages all end with one)."""
    return await ctx.io(
        stage_file,
        ctx.store,
        req.job_id,
        "image",
        thumb.path,
        req.image_key,
        "image/jpeg",
        facts(thumb),
    )


class _Progress:
    """Forwards a transcode's progress (called from the executor thread) to export.status,
    throttled so a long clip sends tens of events, not thousands."""

    def __init__(self, ctx: StageContext, job_id: str, publish: Publish) -> None:
        self.loop = asyncio.get_running_loop()
        self.ctx, self.job_id, self.publish = ctx, job_id, publish
        self.last_value = 0.0
        self.last_time = time.monotonic()
        self.pending: set[concurrent.futures.Future[None]] = set()

    def __call__(self, fraction: float) -> None:
        fraction = min(1.0, max(0.0, float(fraction)))
        now = time.monotonic()
        if fraction - self.last_value < PROGRESS_EVERY and now - self.last_time < PROGRESS_MIN_S:
            return
        self.last_value, self.last_time = fraction, now
        event = status_event(self.job_id, "transcoding", at_ms=self.ctx.clock(), progress=fraction)
        fut = asyncio.run_coroutine_threadsafe(self.publish(event), self.loop)
        self.pending.add(fut)
        fut.add_done_callback(self.pending.discard)


async def transcode_step(ctx: StageContext, task: StageTask, publish: Publish) -> UploadTask:
    """Media job: the clip (copy / H.264 / H.265) and the JPEG of its first frame."""
    from pipeline.media import export_clip, grab_thumbnail

    req = task.request
    if not req.video_key:
        raise ExportError("a media job without a video key", field="video_key", obj=req.job_id)
    start = ctx.clock()
    await publish(
        status_event(
            req.job_id,
            "transcoding",
            at_ms=start,
            stage="transcode",
            stage_start_ms=start,
            progress=0.0,
        )
    )
    work = _work_dir(ctx, req.job_id, "transcode")
    try:
        res = await resolve_recorded(ctx, req)
        reader, _ = ctx.archive(req)
        progress = _Progress(ctx, req.job_id, publish)
        clip_path = work / ("clip" + Path(req.video_key).suffix)
        clip = await ctx.cpu(
            "transcode",
            export_clip,
            reader,
            res,
            clip_path,
            export_type=req.export_type,
            options=ctx.settings.encode,
            progress=progress,
        )
        # The thumbnail of a media job is the clip's first frame: the same resolved start.
        thumb = await ctx.cpu(
            "frame", grab_thumbnail, reader, res, work / "image.jpg", frames=ctx.frames(req.source)
        )
        content_type: ContentType = "video/mp2t" if clip_path.suffix == ".ts" else "video/mp4"
        video = await ctx.io(
            stage_file,
            ctx.store,
            req.job_id,
            "video",
            clip.path,
            req.video_key,
            content_type,
            facts(clip),
        )
        image = await stage_image(ctx, req, thumb)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    end = ctx.clock()
    timings = task.timings | {"transcode": {"start_ms": start, "end_ms": end}}
    return upload_task(
        req,
        artifacts=[image, video],
        timings=timings,
        delivered_ms=int(clip.delivered_ms),
        missing_ms=int(clip.missing_ms),
        lack_length_ms=int(clip.missing_ms),
        gaps=[jsonable(g) for g in clip.gaps],
    )
