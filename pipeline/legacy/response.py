"""The bodies ``POST /export`` and ``GET /export/{job_id}`` answer with (HTTP is always 200).

A job's status (pipeline/jobs.py) or an error raised before there is one becomes the
contract's JSON (/work/shared/api/export-api.md): ErrorCode 0 thumbnail ready, 1 "Work
Not Finish" with a TimeWait estimate, 5 media ready, negative the error's own code
(pipeline/errors.py).  Callers match these bodies byte for byte, key order included: each
answer is a Struct below (field order is the wire order; an absent optional field is left
out), the one definition the OpenAPI document's responses are generated from
(ingress/openapi.py), turned into the dict the ingress writes by ``msgspec.to_builtins``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, cast

import msgspec
from msgspec import Meta

from pipeline.errors import ExportError, Overloaded
from pipeline.jobs import JobStatus, error_from_dict
from pipeline.legacy.paths import EXPORT_DIR, legacy_image_path, legacy_video_path
from schemas.events import State as JobState

if TYPE_CHECKING:
    from schemas.request import ExportRequest

VERSION: Final = "v1"  # the contract's "Version" of a media answer
# ErrorCode of the answers that are not errors (errors answer with ExportError.code).
THUMBNAIL_READY: Final = 0
WORK_NOT_FINISH: Final = 1
MEDIA_READY: Final = 5

TIME_WAIT_MIN_MS = 500
TIME_WAIT_MAX_MS = 5000
_DEFAULT_WAIT_MS = {"thumbnail": 1000, "media": 2000}
_OVERLOADED_WAIT_MS = 2000


JobIdText = Annotated[
    str,
    Meta(
        pattern="^([0-9A-F]{32})?$",
        description="The job's id (poll GET /export/{JobId}); empty when the request was "
        "too broken to name a job.",
    ),
]
ImagePathText = Annotated[
    str,
    Meta(description="The first frame, relative to S3Dir: /<JobId>/<name>.jpg"),
]
VideoPathText = Annotated[str, Meta(description="The clip: /export/<JobId>/<name>.mp4 (or .ts)")]
S3DirText = Annotated[str, Meta(description="The folder of the outputs in the output bucket")]
LackLengthMs = Annotated[
    int,
    Meta(
        ge=0,
        description="ms the clip is shorter than asked (the recording ends or is still "
        "being written); 0 until the archive is resolved",
    ),
]
TimeWaitMs = Annotated[int, Meta(ge=0, description="ms to wait before polling again")]


# The codes of pipeline/errors.py (a test holds the two equal).
ErrorCodeValue = Literal[-1, -2, -3, -4, -5, -6, -9]


class ThumbnailReady(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """FetchMedia false: the first frame is ready (ErrorCode 0)."""

    TimeWait: TimeWaitMs
    ErrorCode: Literal[0]
    ErrorMessage: Literal["Success"]
    ImagePath: ImagePathText
    S3Dir: S3DirText
    JobId: JobIdText


class MediaReady(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """FetchMedia true: the clip is ready to download (ErrorCode 5)."""

    TimeWait: TimeWaitMs
    ErrorCode: Literal[5]
    ErrorMessage: Literal["Success"]
    ImagePath: ImagePathText
    VideoPath: VideoPathText
    Version: Literal["v1"]
    S3Dir: S3DirText
    LackLength: LackLengthMs
    JobId: JobIdText


class WorkNotFinish(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The job is running (ErrorCode 1): poll again after TimeWait ms."""

    TimeWait: Annotated[int, Meta(ge=TIME_WAIT_MIN_MS, le=TIME_WAIT_MAX_MS)]
    ErrorCode: Literal[1]
    ErrorMessage: Literal["Work Not Finish"]
    ImagePath: ImagePathText
    S3Dir: S3DirText
    LackLength: LackLengthMs
    State: Annotated[JobState, Meta(description="The job's state (not in the original contract)")]
    Progress: Annotated[float, Meta(ge=0, le=1, description="The whole job's progress, 0..1")]
    JobId: JobIdText


class ErrorAnswer(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A refused request or a failed job (a negative ErrorCode, pipeline/errors.py); the
    job's paths when there is a job, as in the contract's example."""

    TimeWait: Annotated[int, Meta(ge=0, description="ms before trying again (-4 only)")]
    ErrorCode: Annotated[ErrorCodeValue, Meta(description="The error's class (see ErrorCodes)")]
    ErrorMessage: Annotated[
        str, Meta(description="What went wrong, or the fixed text callers match (-1)")
    ]
    ErrorDetail: (
        Annotated[str, Meta(description="With a fixed ErrorMessage: the detail")] | None
    ) = None
    ErrorField: (
        Annotated[
            str, Meta(description="The field at fault, as the body spells it (story.id, JobId)")
        ]
        | None
    ) = None
    ImagePath: ImagePathText | None = None
    S3Dir: S3DirText | None = None
    VideoPath: VideoPathText | None = None
    Version: Literal["v1"] | None = None
    LackLength: LackLengthMs | None = None
    JobId: JobIdText


# Every answer, HTTP 200 whatever it says; the ErrorCode tells them apart.
Answer = ThumbnailReady | MediaReady | WorkNotFinish | ErrorAnswer
ANSWERS: tuple[type[msgspec.Struct], ...] = (ThumbnailReady, MediaReady, WorkNotFinish, ErrorAnswer)


@dataclass(frozen=True)
class _Job:
    """What every answer about one job names, from its request and/or its status."""

    job_id: str  # "" when the request was too broken to have one
    kind: str
    image_path: str
    video_path: str


def legacy_response(
    req: ExportRequest | None,
    status: JobStatus | None,
    *,
    error: ExportError | None = None,
    now_ms: int,
) -> dict[str, Any]:
    """The answer for a request and/or its status, or for ``error``; every body carries
    ``JobId``.  A failed status answers with the error it stored."""
    return msgspec.to_builtins(answer_for(req, status, error=error, now_ms=now_ms))


def answer_for(
    req: ExportRequest | None,
    status: JobStatus | None,
    *,
    error: ExportError | None = None,
    now_ms: int,
) -> Answer:
    """:func:`legacy_response` as its typed answer."""
    job = _job(req, status)
    if error is None and status is not None and status.state == "failed":
        error = error_from_dict(status.error or {})
    if error is not None:
        return _failed_answer(error, job, known=req is not None or status is not None)
    if status is not None and status.state == "done":
        return _ready_answer(job, status)
    return _running_answer(job, status, now_ms=now_ms)


def _job(req: ExportRequest | None, status: JobStatus | None) -> _Job:
    kind: str
    if req is not None:
        job_id, kind = req.job_id, req.kind
    elif status is not None:
        job_id = status.job_id
        # A status restored without its request: a video key says it is a media job.
        kind = status.kind or ("media" if status.video_key else "thumbnail")
    else:
        job_id, kind = "", "thumbnail"
    # The status's keys win: they are what the upload stage wrote.
    status_keys = (status.image_key, status.video_key) if status is not None else (None, None)
    req_keys = (req.image_key, req.video_key) if req is not None else (None, None)
    image_key = status_keys[0] or req_keys[0]
    video_key = status_keys[1] or req_keys[1]
    return _Job(
        job_id=job_id,
        kind=kind,
        image_path=legacy_image_path(image_key) if image_key else "",
        video_path=legacy_video_path(video_key) if video_key else "",
    )


def _failed_answer(error: ExportError, job: _Job, *, known: bool) -> ErrorAnswer:
    """The error's body; with the job's paths when there is a job (the contract's example)."""
    media = known and job.kind == "media"
    fixed = error.legacy_message  # callers match this exact text; the detail names the object
    return ErrorAnswer(
        TimeWait=_OVERLOADED_WAIT_MS if isinstance(error, Overloaded) else 0,
        ErrorCode=cast(ErrorCodeValue, error.code),
        ErrorMessage=fixed or str(error),
        ErrorDetail=str(error) if fixed else None,
        ErrorField=error.field or None,
        ImagePath=job.image_path if known else None,
        S3Dir=EXPORT_DIR if known else None,
        VideoPath=job.video_path if media else None,
        Version=VERSION if media else None,
        LackLength=0 if media else None,
        JobId=job.job_id,
    )


def _ready_answer(job: _Job, status: JobStatus) -> ThumbnailReady | MediaReady:
    if job.kind == "thumbnail":
        return ThumbnailReady(
            TimeWait=0,
            ErrorCode=THUMBNAIL_READY,
            ErrorMessage="Success",
            ImagePath=job.image_path,
            S3Dir=EXPORT_DIR,
            JobId=job.job_id,
        )
    return MediaReady(
        TimeWait=0,
        ErrorCode=MEDIA_READY,
        ErrorMessage="Success",
        ImagePath=job.image_path,
        VideoPath=job.video_path,
        Version=VERSION,
        S3Dir=EXPORT_DIR,
        LackLength=status.lack_length_ms or 0,
        JobId=job.job_id,
    )


def _running_answer(job: _Job, status: JobStatus | None, *, now_ms: int) -> WorkNotFinish:
    return WorkNotFinish(
        TimeWait=estimate_time_wait_ms(status, kind=job.kind, now_ms=now_ms),
        ErrorCode=WORK_NOT_FINISH,
        ErrorMessage="Work Not Finish",
        ImagePath=job.image_path,
        S3Dir=EXPORT_DIR,
        # Unknown until the archive has been resolved: 0 rather than a guess.
        LackLength=(status.lack_length_ms or 0) if status is not None else 0,
        State=status.state if status is not None else "accepted",
        Progress=round(status.progress, 3) if status is not None else 0.0,
        JobId=job.job_id,
    )


# --- TimeWait ----------------------------------------------------------------------------


def estimate_time_wait_ms(status: JobStatus | None, *, kind: str, now_ms: int) -> int:
    """Milliseconds until the next poll is worthwhile, clamped to 500..5000.

    Waiting for the live edge: the recording grows in real time, so about the missing
    time.  Otherwise: the time spent in the current state scaled by the work left in it.
    """
    default = _DEFAULT_WAIT_MS.get(kind, _DEFAULT_WAIT_MS["media"])
    if status is None or status.final:
        return _clamp(default)
    if status.state == "waiting_live":
        return _clamp(status.lack_length_ms if status.lack_length_ms is not None else default)
    p = status.state_progress
    elapsed = now_ms - status.state_since_ms
    if p >= 0.01 and elapsed > 0 and status.state_since_ms > 0:
        return _clamp(int(elapsed * (1.0 - p) / p))
    return _clamp(default)


def _clamp(ms: float) -> int:
    return int(min(TIME_WAIT_MAX_MS, max(TIME_WAIT_MIN_MS, ms)))
