"""The upload stage: staged artifacts to their deterministic final keys (with story/slug
metadata), staging dropped, and the job's one export.completed event and final status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from pipeline.errors import ExportError, StorageFailure
from pipeline.stages.context import Publish, StageContext
from pipeline.stages.events import request_event, request_from_event, status_event, task_timings
from pipeline.storage import OutputStore
from schemas import SCHEMA_VERSION

if TYPE_CHECKING:
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


def publish_artifact(
    store: OutputStore, art: dict[str, Any], metadata: dict[str, str]
) -> dict[str, Any]:
    # Idempotent: a redelivered upload whose staging copy is already gone finds the final
    # object in place (same deterministic key) and reports it.
    if store.exists(art["staging_key"]):
        obj = store.copy(
            art["staging_key"],
            art["final_key"],
            content_type=art["content_type"],
            metadata=metadata,
        )
        discard_staging(store, {"artifacts": [art]})
        location = obj.location
    elif store.exists(art["final_key"]):
        location = store.location(art["final_key"])
    else:
        raise StorageFailure("staged artifact vanished", obj=art["staging_key"])
    return {
        "key": art["final_key"],
        "location": location,
        "size": art["size"],
        "sha256": art["sha256"],
        "facts": art.get("facts") or {},
    }


def discard_staging(store: OutputStore, task: dict[str, Any]) -> None:
    """Drop a job's staging copies.  Never fails the job: a copy that cannot be deleted
    now is harmless (keys are deterministic) and is logged by OutputStore.discard."""
    for art in task.get("artifacts") or []:
        store.discard(art["staging_key"])


@dataclass(frozen=True)
class Published:
    completed: dict[str, Any]  # CompletedEvent
    status: dict[str, Any]  # the final StatusEvent (done or failed)


async def upload_step(ctx: StageContext, task: dict[str, Any], publish: Publish) -> Published:
    """Copy staged artifacts to their final keys (with story/slug metadata), drop staging,
    and build the job's one export.completed event and its final status."""
    req = request_from_event(task["request"])
    start = ctx.clock()
    outputs: dict[str, Any] = {"image": None}
    if req.kind == "media":
        outputs["video"] = None
    error_dict = task.get("error")
    if error_dict is None:
        await publish(
            status_event(req.job_id, "uploading", at_ms=start, stage="upload", stage_start_ms=start)
        )
        try:
            meta = output_metadata(req)
            for art in task.get("artifacts") or []:
                outputs[art["role"]] = await ctx.io(publish_artifact, ctx.store, art, meta)
        except ExportError as e:
            error_dict = e.to_dict()
    if error_dict is not None:
        await ctx.io(discard_staging, ctx.store, task)
    end = ctx.clock()
    completed = completed_event(
        task, req, outputs=outputs, error=error_dict, end_ms=end, upload_start_ms=start
    )
    return Published(completed=completed, status=final_status(completed))


def completed_event(
    task: dict[str, Any],
    req: ExportRequest | None,
    *,
    outputs: dict[str, Any],
    error: dict[str, Any] | None,
    end_ms: int,
    upload_start_ms: int | None = None,
) -> dict[str, Any]:
    """The job's export.completed event, from its upload task (``req`` None: the job's own
    event was refused, so only its id is known)."""
    timings = task_timings(task)
    if upload_start_ms is not None:
        timings["upload"] = {"start_ms": upload_start_ms, "end_ms": end_ms}
    ok = error is None
    return {
        "schema_version": SCHEMA_VERSION,
        "job_id": task["job_id"],
        "outcome": "ok" if ok else "failed",
        "request": request_event(req) if req is not None else None,
        "completed_at_ms": end_ms,
        "outputs": outputs if ok else {},
        "delivered_ms": int(task.get("delivered_ms") or 0),
        "missing_ms": int(task.get("missing_ms") or 0),
        "lack_length_ms": int(task.get("lack_length_ms") or 0),
        "gaps": task.get("gaps") or [],
        "timings": timings,
        "error": error,
        "story": req.story if req is not None else None,
        "slug": req.slug if req is not None else None,
    }


def final_status(completed: dict[str, Any]) -> dict[str, Any]:
    """The final status event a completed event stands for (said again on redelivery)."""
    job_id, end = completed["job_id"], completed["completed_at_ms"]
    if completed["outcome"] != "ok":
        return status_event(job_id, "failed", at_ms=end, error=completed.get("error"))
    request = completed.get("request") or {}
    return status_event(
        job_id,
        "done",
        at_ms=end,
        stage="upload",
        stage_end_ms=end,
        lack_length_ms=completed.get("lack_length_ms") or 0,
        image_key=request.get("image_key"),
        video_key=request.get("video_key"),
    )
