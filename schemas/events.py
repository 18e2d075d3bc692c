"""The events on every topic but export.requests (schemas/request.py), as msgspec Structs.

Events carry references (output-store keys), never media bytes; every event is keyed by
``job_id``, but for a split clip's chunk tasks (``<job_id>/<n>``, see StageTask).  The JSON
Schema files beside this module are generated from these definitions
(``python -m schemas.generate``; a test fails when a checked-in file is stale), so the rules
a consumer outside Python reads are the rules :func:`schemas.decode` enforces.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from pipeline.errors import ExportError, InvalidRequest
from schemas.request import SCHEMA_VERSION, ExportRequest, JobId, Kind, Story, Text

# Where a job is, in the order it moves (pipeline/jobs.py folds reports of these).
State = Literal[
    "accepted",
    "resolving",
    "waiting_live",
    "grabbing",
    "transcoding",
    "uploading",
    "done",
    "failed",
]

Ms = Annotated[int, Meta(ge=0)]
Timings = dict[str, dict[str, int]]  # stage -> {"start_ms", "end_ms"}
Role = Literal["image", "video"]
ContentType = Literal["image/jpeg", "video/mp4", "video/mp2t"]
STAGING_KEY_PATTERN = r"^staging/[0-9A-F]{32}/(image\.jpg|video\.(mp4|ts))$"


class ErrorInfo(msgspec.Struct, frozen=True):
    """ExportError.to_dict(): what failed, with the legacy ErrorCode and the field/object."""

    type: Annotated[str, Meta(max_length=64)]
    code: int
    message: Annotated[str, Meta(max_length=8192)]
    field: Annotated[str, Meta(max_length=256)] | None = None
    object: Annotated[str, Meta(max_length=2048)] | None = None

    @classmethod
    def of(cls, error: ExportError) -> ErrorInfo:
        """The event form of an error, cut to these bounds: a failure must still end its
        job even when its message (a manifest excerpt, say) is huge."""
        return cls(
            type=type(error).__name__[:64],
            code=error.code,
            message=str(error)[:8192],
            field=error.field[:256] if error.field is not None else None,
            object=error.obj[:2048] if error.obj is not None else None,
        )


MAX_CHUNKS = 1024


class Chunk(msgspec.Struct, frozen=True, kw_only=True):
    """One piece of a long clip transcoded on its own (README "Long clips split across
    workers"): chunk ``index`` is archive time [bounds[index], bounds[index + 1]); every
    chunk task carries the whole plan, so whichever chunk finishes last can join them."""

    index: Annotated[int, Meta(ge=0, lt=MAX_CHUNKS)]
    bounds: Annotated[list[float], Meta(min_length=3, max_length=MAX_CHUNKS + 1)]

    def __post_init__(self) -> None:
        if any(b >= a for a, b in zip(self.bounds[1:], self.bounds, strict=False)):
            raise InvalidRequest("chunk bounds must increase", field="chunk.bounds")
        if self.index >= len(self.bounds) - 1:
            raise InvalidRequest("chunk index beyond its bounds", field="chunk.index")


class StageTask(msgspec.Struct, frozen=True, kw_only=True):
    """``export.frames`` / ``export.transcodes``: the request plus what resolve decided.
    The stage re-resolves the manifest itself (milliseconds), so the event stays small.
    With ``chunk``: one chunk of a split clip (keyed ``<job_id>/<n>``, not by job_id, so
    the chunks of one job spread over the partitions)."""

    schema_version: Literal[2] = SCHEMA_VERSION
    job_id: JobId
    request: ExportRequest
    lack_length_ms: Ms = 0  # still missing beyond the live edge when resolve gave up
    live_waited_ms: Ms = 0
    timings: Timings = {}
    chunk: Chunk | None = None

    def __post_init__(self) -> None:
        _same_job(self.job_id, self.request)


class Artifact(msgspec.Struct, frozen=True, kw_only=True):
    """One file a stage left in the output store under ``staging/<job_id>/``."""

    role: Role
    staging_key: Annotated[str, Meta(pattern=STAGING_KEY_PATTERN)]
    final_key: str  # checked against the request's deterministic keys by UploadTask
    content_type: ContentType
    size: Ms
    sha256: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
    facts: dict[str, Any] = {}


class Output(msgspec.Struct, frozen=True, kw_only=True):
    """One published output of a job: where it is now, and what the stage measured."""

    key: str
    location: str  # s3://bucket/key or a file path, as the output store names it
    size: Ms
    sha256: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
    facts: dict[str, Any] = {}


class _JobOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What an upload task and the completed event it becomes both say about a job.

    ``request`` is null only for a job that ends because its own event was refused (the
    request could not be read): then ``error`` says why."""

    schema_version: Literal[2] = SCHEMA_VERSION
    job_id: JobId
    request: ExportRequest | None
    delivered_ms: Ms = 0
    missing_ms: Ms = 0
    lack_length_ms: Ms = 0
    gaps: list[dict[str, Any]] = []
    timings: Timings = {}
    error: ErrorInfo | None = None


class UploadTask(_JobOutcome, frozen=True, kw_only=True):
    """``export.uploads``: finished (or failed) stage work waiting to be published.
    ``chunk``: the clip was joined from this split plan's chunks, which the upload stage
    drops from staging once the job has ended."""

    artifacts: list[Artifact] = []
    chunk: Chunk | None = None

    def __post_init__(self) -> None:
        if self.request is None:
            if self.error is None:
                raise InvalidRequest(
                    "an upload task without a request needs an error", field="error"
                )
            if self.artifacts:
                raise InvalidRequest(
                    "an upload task without a request has no artifacts", field="artifacts"
                )
            return
        _same_job(self.job_id, self.request)
        finals = {self.request.image_key, self.request.video_key}
        for i, art in enumerate(self.artifacts):
            if not art.staging_key.startswith(f"staging/{self.job_id}/"):
                raise InvalidRequest(
                    f"artifacts[{i}].staging_key {art.staging_key!r} is not this job's",
                    field=f"artifacts[{i}].staging_key",
                )
            if art.final_key not in finals:
                raise InvalidRequest(
                    f"artifacts[{i}].final_key {art.final_key!r} is not an output key of this job",
                    field=f"artifacts[{i}].final_key",
                )


class StatusEvent(msgspec.Struct, frozen=True, kw_only=True):
    """``export.status``: one progress report; the status table folds these per job.

    The first report of a job (``accepted`` from the ingress, ``resolving`` from the resolve
    stage) carries its ``request``, so the supervisor can re-drive a job that stalls."""

    schema_version: Literal[2] = SCHEMA_VERSION
    job_id: JobId
    state: State
    at_ms: Ms
    kind: Kind | None = None
    stage: Text | None = None  # name for the timings; default: the state
    progress: Annotated[float, Meta(ge=0.0, le=1.0)] | None = None  # of this state's own work
    # A split clip's chunk reports its own progress; the fold averages over ``chunks``.
    chunk: Annotated[int, Meta(ge=0, lt=MAX_CHUNKS)] | None = None
    chunks: Annotated[int, Meta(ge=1, le=MAX_CHUNKS)] | None = None
    stage_start_ms: Ms | None = None
    stage_end_ms: Ms | None = None
    lack_length_ms: Ms | None = None  # requested minus what exists/was delivered
    image_key: str | None = None
    video_key: str | None = None
    error: ErrorInfo | None = None  # for state "failed"
    request: ExportRequest | None = None

    def __post_init__(self) -> None:
        if self.request is not None:
            _same_job(self.job_id, self.request)
        if self.chunk is not None and (self.chunks is None or self.chunk >= self.chunks):
            raise InvalidRequest("a chunk's report needs chunks above its index", field="chunks")


class CompletedEvent(_JobOutcome, frozen=True, kw_only=True):
    """``export.completed``: one per job, also when the job failed (for analysts)."""

    outcome: Literal["ok", "failed"]
    completed_at_ms: Ms
    outputs: dict[Role, Output | None] = {}  # null: the job's kind has it, it was not made
    story: Story | None = None
    slug: dict[str, Any] | None = None


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """``export.deadletter``: an event no stage could use, with the reason and its bytes."""

    schema_version: Literal[2] = SCHEMA_VERSION
    topic: str
    reason: str
    original_b64: str  # the original value bytes, base64
    at_ms: Ms
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    error: ErrorInfo | None = None


def _same_job(job_id: str, request: ExportRequest) -> None:
    if request.job_id != job_id:
        raise InvalidRequest(
            f"job_id {job_id} differs from request.job_id {request.job_id}", field="job_id"
        )
