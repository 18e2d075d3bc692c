"""Long clips split across workers: the split plan, a chunk's sub-range, the chunk stage.

A media job of ``export_type`` 1/2 whose Duration exceeds ``split_seconds`` is cut at
segment starts (every segment starts with a keyframe) into chunks of about equal length:
the fewest chunks no longer than ``split_seconds``, rounded up to a multiple of the
partition count (each partition of export.transcodes gets as many chunks, so any even
assignment of partitions to workers shares the work evenly), and none shorter than a
quarter of ``split_seconds``.  Each chunk is transcoded by ``export_clip`` on its sub-range,
video only, by whichever worker owns its partition, and left under
``staging/<job_id>/chunks-<plan>/``: the video, then a small JSON of what its export said
(its presence marks the chunk done).  The chunk that finds every chunk done joins them
(pipeline/stages/join.py).  A repeat of a done chunk (redelivery, a re-drive of the job)
finds its files and only checks for the join, so a lost worker costs only its own chunks.

Not split (transcoded whole, as before): MPEG-TS outputs, audio muxed into the video
segments (HLS TS), ranges not fully recorded yet, and ranges with too few segments.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import hashlib
import math
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from pipeline.errors import MediaError, SourceNotFound
from pipeline.media.timeline import EPS, HOLE_EPS
from pipeline.model import Gap, Resolution, SegmentRef
from pipeline.stages.context import Publish, StageContext
from pipeline.stages.events import status_event
from pipeline.stages.resolve import resolve_recorded
from pipeline.storage import is_s3
from schemas import Chunk, StageTask

if TYPE_CHECKING:
    from pipeline.media.results import ClipResult
    from pipeline.settings import Settings
    from pipeline.storage import OutputStore
    from schemas.request import ExportRequest

MIN_CHUNK_FRACTION = 0.25  # no chunk shorter than this share of split_seconds
PROGRESS_EVERY_S = 1.0


class ChunkFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What a chunk's export said, stored beside its video for the join."""

    first_frame_time: float
    gaps: list[tuple[float, float, str]] = []
    reencoded_frames: int = 0
    frame_count: int = 0
    reorder_ticks: int = 0
    start_ms: int = 0
    end_ms: int = 0

    def gap_list(self) -> tuple[Gap, ...]:
        return tuple(Gap(s, e, r) for s, e, r in self.gaps)  # type: ignore[arg-type]


# --- the plan -------------------------------------------------------------------------


def wants_split(settings: Settings, req: ExportRequest) -> bool:
    """Whether a job may be split, from its request alone (before resolving)."""
    split_s = settings.split_seconds
    return (
        split_s > 0
        and req.kind == "media"
        and req.export_type in (1, 2)
        and (req.video_key or "").endswith(".mp4")
        and req.duration_ms > split_s * 1000
    )


def plan_bounds(res: Resolution, split_s: float, partitions: int) -> list[float] | None:
    """The chunk boundaries (archive s, from ``res.start`` to ``res.end``), or None when
    the range is not split."""
    duration = res.duration
    if split_s <= 0 or duration <= split_s or res.audio_muxed or res.missing_after_edge > 0:
        return None
    count = partitions * math.ceil(math.ceil(duration / split_s) / partitions)
    count = min(count, math.floor(duration / (MIN_CHUNK_FRACTION * split_s)))
    cuts = _cut_points(res)
    if count < 2 or not cuts:
        return None
    ideal = duration / count
    bounds = [res.start]
    for k in range(1, count):
        target = res.start + k * ideal
        cut = min(cuts, key=lambda c: abs(c - target))
        if cut - bounds[-1] >= ideal / 2 and res.end - cut >= ideal / 2:
            bounds.append(cut)
    bounds.append(res.end)
    return bounds if len(bounds) >= 3 else None


def _cut_points(res: Resolution) -> list[float]:
    """Segment starts inside the range where the recording runs on without a break."""
    return [
        ref.start
        for before, ref in zip(res.video, res.video[1:], strict=False)
        if _continues(before, ref) and res.start + EPS < ref.start < res.end - EPS
    ]


def _continues(before: SegmentRef, ref: SegmentRef) -> bool:
    return not ref.discontinuity and ref.start - (before.start + before.duration) <= HOLE_EPS


def chunk_resolution(res: Resolution, bounds: list[float], index: int) -> Resolution:
    """``res`` cut to chunk ``index``: its segments, with the neighbours an open GOP at
    either edge needs (preroll, postroll), and no audio (the join makes it once)."""
    lo = 0 if index == 0 else _segment_at(res, bounds[index])
    last = index == len(bounds) - 2
    hi = len(res.video) if last else _segment_at(res, bounds[index + 1])
    preroll = res.preroll if index == 0 else _neighbour(res.video[lo - 1], res.video[lo])
    postroll = res.postroll if last else _neighbour(res.video[hi - 1], res.video[hi], after=True)
    return dataclasses.replace(
        res,
        start=bounds[index],
        end=bounds[index + 1],
        video=res.video[lo:hi],
        audio=(),
        audio_track=None,
        audio_muxed=False,
        preroll=preroll,
        postroll=postroll,
    )


def _segment_at(res: Resolution, start: float) -> int:
    for i, ref in enumerate(res.video):
        if abs(ref.start - start) <= EPS:
            return i
    raise MediaError(
        f"no segment starts at {start:.3f}s any more (the manifest changed under a split plan)",
        obj=res.manifest,
    )


def _neighbour(before: SegmentRef, ref: SegmentRef, *, after: bool = False) -> SegmentRef | None:
    if not _continues(before, ref):
        return None
    return ref if after else before


# --- where the chunks are -------------------------------------------------------------


def plan_prefix(job_id: str, bounds: list[float]) -> str:
    """Staging folder of one plan: another plan (other settings) never mixes its chunks in."""
    digest = hashlib.sha256(msgspec.json.encode(bounds)).hexdigest()[:12]
    return f"staging/{job_id}/chunks-{digest}/"


def chunk_keys(job_id: str, chunk: Chunk, index: int | None = None) -> tuple[str, str]:
    """(video key, facts key) of a chunk (by default the task's own)."""
    i = chunk.index if index is None else index
    prefix = plan_prefix(job_id, chunk.bounds)
    return f"{prefix}{i:04d}.mp4", f"{prefix}{i:04d}.json"


def chunk_count(chunk: Chunk) -> int:
    return len(chunk.bounds) - 1


def all_done(store: OutputStore, job_id: str, chunk: Chunk) -> bool:
    return all(store.exists(chunk_keys(job_id, chunk, i)[1]) for i in range(chunk_count(chunk)))


def delivered(store: OutputStore, req: ExportRequest) -> bool:
    """Whether this job's clip is at its final key already, written since the job was
    submitted: a chunk task that comes after the job ended (a fan-out or a chunk redelivered
    after a crash, on a worker that does not hold the job's own partition and so cannot see
    its completed row) then does nothing, instead of leaving a chunk behind in staging.  An
    older output (the same body submitted again after EXPORT_JOB_TTL_MS) does not count."""
    if req.video_key is None:
        return False
    location = store.location(req.video_key)
    try:
        if is_s3(location):
            modified = store.blobs.head(location)["LastModified"].timestamp()
        else:
            modified = os.path.getmtime(location)
    except (SourceNotFound, FileNotFoundError):
        return False
    return modified * 1000 >= req.submitted_at_ms


def discard_chunks(store: OutputStore, job_id: str, chunk: Chunk) -> None:
    """Drop every chunk's files (best effort, like any staging cleanup)."""
    for i in range(chunk_count(chunk)):
        for key in chunk_keys(job_id, chunk, i):
            store.discard(key)


# --- the stages ------------------------------------------------------------------------


async def split_step(ctx: StageContext, task: StageTask, publish: Publish) -> list[StageTask]:
    """The chunk tasks of a job to split, or [] when its range is not split after all."""
    req = task.request
    res = await resolve_recorded(ctx, req)
    bounds = plan_bounds(res, ctx.settings.split_seconds, ctx.settings.partitions)
    if bounds is None:
        return []
    now = ctx.clock()
    await publish(
        status_event(
            req.job_id,
            "transcoding",
            at_ms=now,
            stage="transcode",
            stage_start_ms=now,
            progress=0.0,
            chunks=len(bounds) - 1,
        )
    )
    return [
        msgspec.structs.replace(task, chunk=Chunk(index=i, bounds=bounds))
        for i in range(len(bounds) - 1)
    ]


async def chunk_step(
    ctx: StageContext, task: StageTask, publish: Publish
) -> tuple[Resolution, bool]:
    """Transcode one chunk into staging unless it is there already; returns the job's
    resolution (for the join) and whether this run transcoded it."""
    req, chunk = task.request, task.chunk
    assert chunk is not None
    res = await resolve_recorded(ctx, req)
    video_key, facts_key = chunk_keys(req.job_id, chunk)
    n = chunk_count(chunk)
    done = await ctx.io(ctx.store.exists, facts_key)
    if not done:
        start = ctx.clock()
        report = _ChunkProgress(ctx, req.job_id, chunk.index, n, publish)
        sub = chunk_resolution(res, chunk.bounds, chunk.index)
        with tempfile.TemporaryDirectory(dir=ctx.work_dir) as work:
            path = Path(work) / "chunk.mp4"
            clip, reorder = await ctx.cpu("transcode", _export, ctx, sub, req, path, report)
            await ctx.io(ctx.store.put_file, video_key, path, "video/mp4")
            facts = ChunkFacts(
                first_frame_time=clip.first_frame_time,
                gaps=[(g.start, g.end, g.reason) for g in clip.gaps],
                reencoded_frames=clip.reencoded_frames,
                frame_count=clip.frame_count,
                reorder_ticks=reorder,
                start_ms=start,
                end_ms=ctx.clock(),
            )
            marker = Path(work) / "facts.json"
            marker.write_bytes(msgspec.json.encode(facts))
            await ctx.io(ctx.store.put_file, facts_key, marker, "application/json")
    await publish(
        status_event(
            req.job_id, "transcoding", at_ms=ctx.clock(), progress=1.0, chunk=chunk.index, chunks=n
        )
    )
    return res, not done


def _export(
    ctx: StageContext, sub: Resolution, req: ExportRequest, path: Path, report: Any
) -> tuple[ClipResult, int]:
    """The chunk's clip, and the decode delay the join needs to know of it."""
    from pipeline.media import export_clip
    from pipeline.media.join import reorder_ticks

    reader, _ = ctx.archive(req)
    clip = export_clip(
        reader,
        sub,
        path,
        export_type=req.export_type,
        options=ctx.settings.encode,
        progress=report,
    )
    return clip, reorder_ticks(path)


class _ChunkProgress:
    """A chunk's progress (called from the executor thread) to export.status, at most
    about once a second."""

    def __init__(
        self, ctx: StageContext, job_id: str, index: int, count: int, publish: Publish
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.ctx, self.job_id, self.publish = ctx, job_id, publish
        self.index, self.count = index, count
        self.last = -math.inf
        self.pending: set[concurrent.futures.Future[None]] = set()

    def __call__(self, fraction: float) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY_S:
            return
        self.last = now
        event = status_event(
            self.job_id,
            "transcoding",
            at_ms=self.ctx.clock(),
            progress=min(1.0, max(0.0, float(fraction))),
            chunk=self.index,
            chunks=self.count,
        )
        fut = asyncio.run_coroutine_threadsafe(self.publish(event), self.loop)
        self.pending.add(fut)
        fut.add_done_callback(self.pending.discard)
