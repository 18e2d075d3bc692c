"""What each agent does with one event, as plain async functions (no faust imports).

An agent decodes an event, calls one function here and sends what it returns.  CPU work
(frame grabs, transcodes) runs in a thread pool behind per-worker semaphores
(``max_frame_grabs``, ``max_transcodes``), so the event loop keeps heartbeating while a
transcode runs for minutes.  Artifacts move through the output store: the frame and
transcode stages write ``staging/<job_id>/...``; the upload stage copies them to the job's
deterministic final keys and removes staging.  Events carry keys, never media bytes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import shutil
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pipeline.errors import ExportError
from pipeline.jobs import State, StatusUpdate
from pipeline.storage import Blobs, OutputStore
from schemas import SCHEMA_VERSION

if TYPE_CHECKING:
    from pipeline.legacy import ExportRequest
    from pipeline.model import Resolution
    from pipeline.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
Publish = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]
Clock = Callable[[], int]

LIVE_POLL_S = 0.5  # how often a waiting job re-reads a growing manifest
PROGRESS_EVERY = 0.1  # publish transcode progress in steps of this fraction...
PROGRESS_MIN_S = 1.0  # ...or at least this often


def now_ms() -> int:
    return int(time.time() * 1000)


# --- context ---------------------------------------------------------------------------


@dataclass
class StageContext:
    """Per-worker resources the stages share: storage, scratch space, CPU slots."""

    settings: Settings
    store: OutputStore
    work_dir: Path
    executor: ThreadPoolExecutor
    clock: Clock = now_ms
    _readers: dict[str | None, Blobs] = field(default_factory=dict)
    _slots: dict[str, asyncio.Semaphore] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> StageContext:
        blobs = Blobs(settings.s3_endpoint_url, settings.s3_region)
        work_dir = settings.data_dir / "work"
        work_dir.mkdir(parents=True, exist_ok=True)
        workers = settings.max_transcodes + settings.max_frame_grabs + 4
        return cls(
            settings=settings,
            store=OutputStore(settings.output_url, blobs),
            work_dir=work_dir,
            executor=ThreadPoolExecutor(workers, thread_name_prefix="stage"),
            _readers={settings.s3_region: blobs},
        )

    def reader(self, source: dict[str, Any]) -> Blobs:
        """Archive reader for a job's source (one boto3 client per region)."""
        region = source.get("region") or self.settings.s3_region
        if region not in self._readers:
            self._readers[region] = Blobs(self.settings.s3_endpoint_url, region)
        return self._readers[region]

    def slots(self, kind: Literal["transcode", "frame"]) -> asyncio.Semaphore:
        # Created lazily: a Semaphore must be made inside the running loop's lifetime.
        if kind not in self._slots:
            limit = (
                self.settings.max_transcodes
                if kind == "transcode"
                else self.settings.max_frame_grabs
            )
            self._slots[kind] = asyncio.Semaphore(limit)
        return self._slots[kind]

    async def io(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Blocking I/O (manifest reads, uploads) off the event loop, without a CPU slot."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    async def cpu(
        self, kind: Literal["transcode", "frame"], fn: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        async with self.slots(kind):
            return await self.io(fn, *args, **kwargs)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


# --- event helpers -----------------------------------------------------------------------


def request_from_event(event: dict[str, Any]) -> ExportRequest:
    from pipeline.legacy import ExportRequest

    data = {k: v for k, v in event.items() if k != "schema_version"}
    return ExportRequest.from_dict(data)


def request_event(req: ExportRequest) -> dict[str, Any]:
    """The export.requests event for a request (what the ingress publishes)."""
    return {"schema_version": SCHEMA_VERSION, **req.to_dict()}


def status_event(job_id: str, state: State, *, at_ms: int, **fields: Any) -> dict[str, Any]:
    """An export.status event; StatusUpdate validates it (the status agent folds it)."""
    update = StatusUpdate(job_id=job_id, state=state, at_ms=at_ms, **fields)
    return {"schema_version": SCHEMA_VERSION, **update.to_dict()}


def lack_ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _range(req: ExportRequest) -> Any:
    from pipeline.manifest import range_request

    return range_request(req.start_pos_ms, req.start_time, req.duration_ms)


def _source(req: ExportRequest) -> dict[str, Any]:
    src = req.source
    return src.to_dict()


async def resolve_once(ctx: StageContext, req: ExportRequest) -> Resolution:
    from pipeline.manifest import resolve

    source = _source(req)
    return await ctx.io(resolve, ctx.reader(source), source["manifest"], _range(req))


def _facts(result: Any) -> dict[str, Any]:
    data = dict(result.to_dict()) if hasattr(result, "to_dict") else asdict(result)
    data.pop("path", None)  # a worker-local scratch path means nothing downstream
    return {k: _jsonable(v) for k, v in data.items()}


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


# --- resolve -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Routed:
    topic: str  # export.frames or export.transcodes
    task: dict[str, Any]  # StageTask


async def resolve_step(
    ctx: StageContext,
    req: ExportRequest,
    publish: Publish,
    *,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> Routed:
    """Resolve the request; if the range runs past a live edge, wait (bounded by
    ``live_wait_ms``), re-resolving the growing manifest and publishing ``waiting_live``
    with the shrinking LackLength; then route the job to the frame or transcode stage."""
    from schemas import FRAMES, TRANSCODES

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
        )
    )
    deadline = start + ctx.settings.live_wait_ms
    waited_from: int | None = None
    while True:
        res = await resolve_once(ctx, req)
        beyond = lack_ms(res.missing_after_edge)
        now = ctx.clock()
        if beyond <= 0 or not res.is_live or now >= deadline:
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
    timings = {"resolve": {"start_ms": start, "end_ms": end}}
    if waited_from is not None:
        timings["waiting_live"] = {"start_ms": waited_from, "end_ms": end}
    task = {
        "schema_version": SCHEMA_VERSION,
        "job_id": req.job_id,
        "request": request_event(req),
        "lack_length_ms": lack_ms(res.missing),
        "live_waited_ms": end - waited_from if waited_from is not None else 0,
        "timings": timings,
    }
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


# --- frames and transcodes ---------------------------------------------------------------


def staging_key(job_id: str, name: str) -> str:
    return f"staging/{job_id}/{name}"


def _stage_file(
    store: OutputStore,
    job_id: str,
    role: str,
    path: Path,
    final_key: str,
    content_type: str,
    facts: dict[str, Any],
) -> dict[str, Any]:
    key = staging_key(job_id, role + Path(final_key).suffix)
    obj = store.put_file(key, path, content_type)
    return {
        "role": role,
        "staging_key": obj.key,
        "final_key": final_key,
        "content_type": content_type,
        "size": obj.size,
        "sha256": obj.sha256,
        "facts": facts,
    }


def _work_dir(ctx: StageContext, job_id: str, stage: str) -> Path:
    path = ctx.work_dir / f"{job_id}-{stage}"
    shutil.rmtree(path, ignore_errors=True)  # a redelivery starts clean
    path.mkdir(parents=True)
    return path


def _task_timings(task: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {k: dict(v) for k, v in (task.get("timings") or {}).items()}


async def frame_step(ctx: StageContext, task: dict[str, Any], publish: Publish) -> dict[str, Any]:
    """Thumbnail job: the JPEG of the first frame at or after the start, to staging."""
    from pipeline.media import grab_thumbnail

    req = request_from_event(task["request"])
    start = ctx.clock()
    await publish(
        status_event(req.job_id, "grabbing", at_ms=start, stage="frames", stage_start_ms=start)
    )
    work = _work_dir(ctx, req.job_id, "frames")
    try:
        res = await resolve_once(ctx, req)
        reader = ctx.reader(_source(req))
        thumb = await ctx.cpu("frame", grab_thumbnail, reader, res, work / "image.jpg")
        art = await ctx.io(
            _stage_file,
            ctx.store,
            req.job_id,
            "image",
            thumb.path,
            req.image_key,
            "image/jpeg",
            _facts(thumb),
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    end = ctx.clock()
    timings = _task_timings(task) | {"frames": {"start_ms": start, "end_ms": end}}
    return upload_task(
        req, artifacts=[art], timings=timings, lack_length_ms=int(task.get("lack_length_ms") or 0)
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


async def transcode_step(
    ctx: StageContext, task: dict[str, Any], publish: Publish
) -> dict[str, Any]:
    """Media job: the clip (copy / H.264 / H.265) and the JPEG of its first frame."""
    from pipeline.media import export_clip, grab_thumbnail

    req = request_from_event(task["request"])
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
        res = await resolve_once(ctx, req)
        reader = ctx.reader(_source(req))
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
        thumb = await ctx.cpu("frame", grab_thumbnail, reader, res, work / "image.jpg")
        content_type = "video/mp2t" if clip_path.suffix == ".ts" else "video/mp4"
        video = await ctx.io(
            _stage_file,
            ctx.store,
            req.job_id,
            "video",
            clip.path,
            req.video_key,
            content_type,
            _facts(clip),
        )
        image = await ctx.io(
            _stage_file,
            ctx.store,
            req.job_id,
            "image",
            thumb.path,
            req.image_key,
            "image/jpeg",
            _facts(thumb),
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    end = ctx.clock()
    timings = _task_timings(task) | {"transcode": {"start_ms": start, "end_ms": end}}
    return upload_task(
        req,
        artifacts=[image, video],
        timings=timings,
        delivered_ms=int(clip.delivered_ms),
        missing_ms=int(clip.missing_ms),
        lack_length_ms=int(clip.missing_ms),
        gaps=[_jsonable(g) for g in clip.gaps],
    )


def upload_task(
    req: ExportRequest,
    *,
    artifacts: list[dict[str, Any]] | None = None,
    timings: dict[str, dict[str, int]] | None = None,
    delivered_ms: int = 0,
    missing_ms: int = 0,
    lack_length_ms: int = 0,
    gaps: list[Any] | None = None,
    error: ExportError | None = None,
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "job_id": req.job_id,
        "request": request_event(req),
        "artifacts": artifacts or [],
        "delivered_ms": delivered_ms,
        "missing_ms": missing_ms,
        "lack_length_ms": lack_length_ms,
        "gaps": gaps or [],
        "timings": timings or {},
        "error": error.to_dict() if error is not None else None,
    }


# --- upload / publish --------------------------------------------------------------------


def output_metadata(req: ExportRequest) -> dict[str, str]:
    """What travels into the output's metadata (S3 user metadata, or a local sidecar)."""
    from schemas import codec

    meta = {"job-id": req.job_id, "kind": req.kind}
    story = req.story or {}
    if story.get("id"):
        meta["story-id"] = str(story["id"])
    if story.get("name"):
        meta["story-name"] = str(story["name"])
    if req.slug:
        meta["slug"] = codec.dumps(req.slug).decode()
    if req.user_id:
        meta["user-id"] = req.user_id
    return meta


def _publish_artifact(
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
        store.delete(art["staging_key"])
        location = obj.location
    elif store.exists(art["final_key"]):
        location = store.location(art["final_key"])
    else:
        from pipeline.errors import StorageFailure

        raise StorageFailure("staged artifact vanished", obj=art["staging_key"])
    return {
        "key": art["final_key"],
        "location": location,
        "size": art["size"],
        "sha256": art["sha256"],
        "facts": art.get("facts") or {},
    }


def discard_staging(store: OutputStore, task: dict[str, Any]) -> None:
    for art in task.get("artifacts") or []:
        store.delete(art["staging_key"])


@dataclass(frozen=True)
class Published:
    completed: dict[str, Any]  # CompletedEvent
    status: dict[str, Any]  # the final StatusEvent (done or failed)


async def upload_step(ctx: StageContext, task: dict[str, Any], publish: Publish) -> Published:
    """Copy staged artifacts to their final keys (with story/slug metadata), drop staging,
    and build the job's one export.completed event and its final status."""
    req = request_from_event(task["request"])
    start = ctx.clock()
    timings = _task_timings(task)
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
                outputs[art["role"]] = await ctx.io(_publish_artifact, ctx.store, art, meta)
        except ExportError as e:
            error_dict = e.to_dict()
    if error_dict is not None:
        await ctx.io(discard_staging, ctx.store, task)
    end = ctx.clock()
    timings["upload"] = {"start_ms": start, "end_ms": end}
    ok = error_dict is None
    completed = {
        "schema_version": SCHEMA_VERSION,
        "job_id": req.job_id,
        "outcome": "ok" if ok else "failed",
        "request": request_event(req),
        "completed_at_ms": end,
        "outputs": outputs if ok else {},
        "delivered_ms": int(task.get("delivered_ms") or 0),
        "missing_ms": int(task.get("missing_ms") or 0),
        "lack_length_ms": int(task.get("lack_length_ms") or 0),
        "gaps": task.get("gaps") or [],
        "timings": timings,
        "error": error_dict,
        "story": req.story,
        "slug": req.slug,
    }
    if ok:
        final = status_event(
            req.job_id,
            "done",
            at_ms=end,
            stage="upload",
            stage_end_ms=end,
            lack_length_ms=completed["lack_length_ms"],
            image_key=req.image_key,
            video_key=req.video_key,
        )
    else:
        final = status_event(req.job_id, "failed", at_ms=end, error=error_dict)
    return Published(completed=completed, status=final)
