"""The bodies ``POST /export`` and ``GET /export/{job_id}`` answer with (HTTP is always 200).

A job's status (pipeline/jobs.py) or an error raised before there is one becomes the
contract's JSON (/work/shared/api/export-api.md): ErrorCode 0 thumbnail ready, 1 "Work
Not Finish" with a TimeWait estimate, 5 media ready, negative the error's own code
(pipeline/errors.py).  Callers match these bodies byte for byte, key order included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.errors import ExportError, Overloaded
from pipeline.jobs import JobStatus, error_from_dict
from pipeline.legacy.paths import EXPORT_DIR, legacy_image_path, legacy_video_path

if TYPE_CHECKING:
    from schemas.request import ExportRequest

VERSION = "v1"  # the contract's "Version" of a media answer
# ErrorCode of the answers that are not errors (errors answer with ExportError.code).
THUMBNAIL_READY = 0
WORK_NOT_FINISH = 1
MEDIA_READY = 5

TIME_WAIT_MIN_MS = 500
TIME_WAIT_MAX_MS = 5000
_DEFAULT_WAIT_MS = {"thumbnail": 1000, "media": 2000}
_OVERLOADED_WAIT_MS = 2000


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


def _failed_answer(error: ExportError, job: _Job, *, known: bool) -> dict[str, Any]:
    """The error's body; with the job's paths when there is a job (the contract's example)."""
    body = _error_body(error)
    if known:
        body.update({"ImagePath": job.image_path, "S3Dir": EXPORT_DIR})
        if job.kind == "media":
            body.update({"VideoPath": job.video_path, "Version": VERSION, "LackLength": 0})
    body["JobId"] = job.job_id
    return body


def _ready_answer(job: _Job, status: JobStatus) -> dict[str, Any]:
    if job.kind == "thumbnail":
        return {
            "TimeWait": 0,
            "ErrorCode": THUMBNAIL_READY,
            "ErrorMessage": "Success",
            "ImagePath": job.image_path,
            "S3Dir": EXPORT_DIR,
            "JobId": job.job_id,
        }
    return {
        "TimeWait": 0,
        "ErrorCode": MEDIA_READY,
        "ErrorMessage": "Success",
        "ImagePath": job.image_path,
        "VideoPath": job.video_path,
        "Version": VERSION,
        "S3Dir": EXPORT_DIR,
        "LackLength": status.lack_length_ms or 0,
        "JobId": job.job_id,
    }


def _running_answer(job: _Job, status: JobStatus | None, *, now_ms: int) -> dict[str, Any]:
    return {
        "TimeWait": estimate_time_wait_ms(status, kind=job.kind, now_ms=now_ms),
        "ErrorCode": WORK_NOT_FINISH,
        "ErrorMessage": "Work Not Finish",
        "ImagePath": job.image_path,
        "S3Dir": EXPORT_DIR,
        # Unknown until the archive has been resolved: 0 rather than a guess.
        "LackLength": (status.lack_length_ms or 0) if status is not None else 0,
        "State": status.state if status is not None else "accepted",
        "Progress": round(status.progress, 3) if status is not None else 0.0,
        "JobId": job.job_id,
    }


def _error_body(error: ExportError) -> dict[str, Any]:
    body: dict[str, Any] = {
        "TimeWait": _OVERLOADED_WAIT_MS if isinstance(error, Overloaded) else 0,
        "ErrorCode": error.code,
    }
    if error.legacy_message:
        # Callers match this exact text; the detail names the object.
        body["ErrorMessage"] = error.legacy_message
        body["ErrorDetail"] = str(error)
    else:
        body["ErrorMessage"] = str(error)
    if error.field:
        body["ErrorField"] = error.field
    return body


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
