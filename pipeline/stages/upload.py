"""The upload stage: staged artifacts to their deterministic final keys (with story/slug
metadata), staging dropped, and the job's one export.completed event and final status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from pipeline.errors import ExportError, StorageFailure
from pipeline.stages.context import Publish, StageContext
from pipeline.stages.events import status_event
from pipeline.storage import OutputStore
from schemas import Artifact, CompletedEvent, ErrorInfo, Output, StatusEvent, UploadTask

if TYPE_CHECKING:
    from schemas.events import Role
    from schemas.request import ExportRequest


def output_metadata(req: ExportRequest) -> dict[str, str]:
    """What travels into the output's metadata (S3 user metadata, or a local sidecar)."""
    meta = {"job-id": req.job_id, "kind": req.kind}
    if req.story is not None and req.story.id:
        meta["story-id"] = req.story.id
    if req.story is not None and req.story.name:
        meta["story-name"] = req.story.name
    if req.slug:
        meta["slug"] = orjson.dumps(req.slug).decode()
    if req.user_id:
        meta["user-id"] = req.user_id
    return meta


def publish_artifact(store: OutputStore, art: Artifact, metadata: dict[str, str]) -> Output:
    # Idempotent: a redelivered upload whose staging copy is already gone finds the final
    # object in place (same deterministic key) and reports it.
    if store.exists(art.staging_key):
        obj = store.copy(
            art.staging_key, art.final_key, content_type=art.content_type, metadata=metadata
        )
        store.discard(art.staging_key)
        location = obj.location
    elif store.exists(art.final_key):
        location = store.location(art.final_key)
    else:
        raise StorageFailure("staged artifact vanished", obj=art.staging_key)
    return Output(
        key=art.final_key, location=location, size=art.size, sha256=art.sha256, facts=art.facts
    )


def discard_staging(store: OutputStore, task: UploadTask) -> None:
    """Drop a job's staging copies.  Never fails the job: a copy that cannot be deleted
    now is harmless (keys are deterministic) and is logged by OutputStore.discard."""
    for art in task.artifacts:
        store.discard(art.staging_key)


@dataclass(frozen=True)
class Published:
    completed: CompletedEvent
    status: StatusEvent  # the final report (done or failed)


async def upload_step(ctx: StageContext, task: UploadTask, publish: Publish) -> Published:
    """Copy staged artifacts to their final keys (with story/slug metadata), drop staging,
    and build the job's one export.completed event and its final status."""
    req = task.request
    if req is None:
        raise ValueError("upload_step needs a task with its request")
    start = ctx.clock()
    outputs: dict[Role, Output | None] = {"image": None}
    if req.kind == "media":
        outputs["video"] = None
    error = task.error
    if error is None:
        await publish(
            status_event(req.job_id, "uploading", at_ms=start, stage="upload", stage_start_ms=start)
        )
        try:
            meta = output_metadata(req)
            for art in task.artifacts:
                outputs[art.role] = await ctx.io(publish_artifact, ctx.store, art, meta)
        except ExportError as e:
            error = ErrorInfo.of(e)
    if error is not None:
        await ctx.io(discard_staging, ctx.store, task)
    end = ctx.clock()
    completed = completed_event(
        task, outputs=outputs, error=error, end_ms=end, upload_start_ms=start
    )
    return Published(completed=completed, status=final_status(completed))


def completed_event(
    task: UploadTask,
    *,
    outputs: dict[Role, Output | None],
    error: ErrorInfo | None,
    end_ms: int,
    upload_start_ms: int | None = None,
) -> CompletedEvent:
    """The job's export.completed event, from its upload task (a task without a request:
    the job's own event was refused, so only its id is known)."""
    timings = dict(task.timings)
    if upload_start_ms is not None:
        timings["upload"] = {"start_ms": upload_start_ms, "end_ms": end_ms}
    req = task.request
    ok = error is None
    return CompletedEvent(
        job_id=task.job_id,
        outcome="ok" if ok else "failed",
        request=req,
        completed_at_ms=end_ms,
        outputs=outputs if ok else {},
        delivered_ms=task.delivered_ms,
        missing_ms=task.missing_ms,
        lack_length_ms=task.lack_length_ms,
        gaps=task.gaps,
        timings=timings,
        error=error,
        story=req.story if req is not None else None,
        slug=req.slug if req is not None else None,
    )


def final_status(completed: CompletedEvent) -> StatusEvent:
    """The final status event a completed event stands for (said again on redelivery)."""
    job_id, end = completed.job_id, completed.completed_at_ms
    if completed.outcome != "ok":
        return status_event(job_id, "failed", at_ms=end, error=completed.error)
    req = completed.request
    return status_event(
        job_id,
        "done",
        at_ms=end,
        stage="upload",
        stage_end_ms=end,
        lack_length_ms=completed.lack_length_ms,
        image_key=req.image_key if req is not None else None,
        video_key=req.video_key if req is not None else None,
    )
