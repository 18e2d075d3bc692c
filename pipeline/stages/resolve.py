"""The resolve stage: the manifest resolved for a request, with the bounded live-edge wait.

A range that is not recorded yet waits for a growing (live) recording to catch up, bounded by
``live_wait_ms``: a media job until its end is recorded, a thumbnail until its first frame is
(the rest of its Duration does not matter to a JPEG).  A range that starts beyond the live
edge waits the same way as one that only ends beyond it.  When the wait ends with nothing of
the range recorded, the job fails with an error naming StartPos (or StartTime); otherwise it
goes on with what exists and the LackLength says what is missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.errors import RangeNotInArchive
from pipeline.stages.context import Publish, StageContext
from pipeline.stages.events import lack_ms, status_event
from schemas import FRAMES, TRANSCODES, StageTask

if TYPE_CHECKING:
    from pipeline.model import Resolution
    from schemas.request import ExportRequest

LIVE_POLL_S = 0.5  # how often a waiting job re-reads a growing manifest
_EPS = 1e-6
_DEFAULT_FRAME_S = 0.1  # when the manifest does not say the frame rate


@dataclass(frozen=True)
class Routed:
    topic: str  # export.frames or export.transcodes
    task: StageTask


async def resolve_once(ctx: StageContext, req: ExportRequest) -> Resolution:
    from pipeline.manifest import resolve

    reader, manifest = ctx.archive(req)
    return await ctx.io(resolve, reader, manifest, req.range())


async def resolve_recorded(ctx: StageContext, req: ExportRequest) -> Resolution:
    """Resolve for the frame and transcode stages: fails (naming StartPos) when a live
    recording has not reached the job's start, instead of producing nothing.

    A thumbnail resolves its point the way ``mediaexport thumb`` does: when StartPos lies
    in a gap longer than the request's Duration, the window widens to the first frame
    after the gap ("the first frame at or after StartPos")."""
    if req.kind == "thumbnail":
        from pipeline.media import resolve_thumbnail_point

        reader, manifest = ctx.archive(req)
        res = await ctx.io(resolve_thumbnail_point, reader, manifest, req.range())
    else:
        res = await resolve_once(ctx, req)
    check_start_recorded(req, res, waited_ms=None)
    return res


def start_unrecorded(res: Resolution) -> bool:
    """True when a live recording has not reached the start of the range at all."""
    return res.is_live and res.live_edge is not None and res.live_edge <= res.start + _EPS


def needs_live_wait(req: ExportRequest, res: Resolution) -> bool:
    """True while waiting for the live edge can still improve the job's output: a clip
    until its end is recorded, a thumbnail until its first frame is."""
    if not res.is_live or res.live_edge is None:
        return False
    if req.kind == "thumbnail":
        # The wanted frame is the first at or after the start: up to two frame durations on.
        fps = res.video_track.frame_rate
        margin = 2.0 / fps if fps else _DEFAULT_FRAME_S
        return res.live_edge < res.start + margin - _EPS
    return lack_ms(res.missing_after_edge) > 0


def check_start_recorded(req: ExportRequest, res: Resolution, *, waited_ms: int | None) -> None:
    """Fail a job none of whose range is recorded (rather than produce an empty output)."""
    if not start_unrecorded(res):
        return
    field = "StartPos" if res.clock == "wall" else "StartTime"
    given = req.start_pos_ms if field == "StartPos" else req.start_time
    edge = res.live_edge if res.live_edge is not None else 0.0
    waited = (
        f"within the {waited_ms} ms live wait (EXPORT_LIVE_WAIT_MS)"
        if waited_ms is not None
        else "yet"
    )
    raise RangeNotInArchive(
        f"{field} {given} (archive time {res.start:.3f}s) lies beyond the live edge "
        f"({edge:.3f}s) of the recording, which did not reach it {waited}",
        field=field,
        obj=res.manifest,
    )


async def resolve_step(
    ctx: StageContext,
    req: ExportRequest,
    publish: Publish,
    *,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> Routed:
    """Resolve the request; while the live edge has not reached what the job needs, wait
    (bounded by ``live_wait_ms``), re-resolving the growing manifest and publishing
    ``waiting_live`` with the LackLength; then route the job to the frame or transcode
    stage, or fail it when nothing of the range was recorded."""
    start = ctx.clock()
    await publish(
        status_event(
            req.job_id,
            "resolving",
            at_ms=start,
            kind=req.kind,
            stage="resolve",
            stage_start_ms=start,
            image_key=req.image_key,
            video_key=req.video_key,
            request=req.to_dict(),
        )
    )
    deadline = start + ctx.settings.live_wait_ms
    waited_from: int | None = None
    while True:
        res = await resolve_once(ctx, req)
        now = ctx.clock()
        if not needs_live_wait(req, res) or now >= deadline:
            break
        if waited_from is None:
            waited_from = now
        await publish(
            status_event(
                req.job_id,
                "waiting_live",
                at_ms=now,
                kind=req.kind,
                lack_length_ms=lack_ms(res.missing),
                progress=min(1.0, (now - start) / max(1, deadline - start)),
            )
        )
        await sleep(min(LIVE_POLL_S, max(0.0, (deadline - now) / 1000)))
    end = ctx.clock()
    check_start_recorded(req, res, waited_ms=end - start)
    timings = {"resolve": {"start_ms": start, "end_ms": end}}
    if waited_from is not None:
        timings["waiting_live"] = {"start_ms": waited_from, "end_ms": end}
    task = StageTask(
        job_id=req.job_id,
        request=req,
        lack_length_ms=lack_ms(res.missing),
        live_waited_ms=end - waited_from if waited_from is not None else 0,
        timings=timings,
    )
    await publish(
        status_event(
            req.job_id,
            "resolving",
            at_ms=end,
            stage="resolve",
            stage_end_ms=end,
            lack_length_ms=lack_ms(res.missing),
        )
    )
    return Routed(FRAMES if req.kind == "thumbnail" else TRANSCODES, task)
