"""Job status: states, the monotonic update rule, output keys and the legacy response body.

A job's status is the value of the status table, keyed by ``job_id``.  Every stage sends
:class:`StatusUpdate` events; :func:`advance` folds them in so that a redelivered, duplicated
or out-of-order update never moves a job backwards.  :func:`legacy_response` turns a status
(or an error raised before there is one) into the body ``POST /export`` answers with.
"""

from __future__ import annotations

import copy
import math
import re
import unicodedata
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, get_args

from pipeline import errors
from pipeline.errors import ExportError, InvalidRequest, Overloaded

if TYPE_CHECKING:
    from schemas.request import ExportRequest

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
Kind = Literal["thumbnail", "media"]
STATES: tuple[State, ...] = get_args(State)
FINAL_STATES = frozenset({"done", "failed"})
# Order in which a job moves; a parallel stage that is "behind" (a media job's first-frame
# grab while it already transcodes) still records its timings but does not move the state.
_RANK = {s: i for i, s in enumerate(STATES[:-2])} | {"done": 99, "failed": 99}
# Share of the whole job each state stands for, so JobStatus.progress (0..1) only grows.
_BANDS: dict[str, dict[str, tuple[float, float]]] = {
    "media": {
        "accepted": (0.0, 0.0),
        "resolving": (0.0, 0.05),
        "waiting_live": (0.05, 0.10),
        "grabbing": (0.10, 0.15),
        "transcoding": (0.15, 0.90),
        "uploading": (0.90, 1.0),
    },
    "thumbnail": {
        "accepted": (0.0, 0.0),
        "resolving": (0.0, 0.2),
        "waiting_live": (0.2, 0.3),
        "grabbing": (0.3, 0.8),
        "transcoding": (0.3, 0.8),
        "uploading": (0.8, 1.0),
    },
}

EXPORT_DIR = "export"  # S3Dir: outputs live under <output root>/export/<job_id>/
VERSION = "v1"
TIME_WAIT_MIN_MS = 500
TIME_WAIT_MAX_MS = 5000
_DEFAULT_WAIT_MS = {"thumbnail": 1000, "media": 2000}
_OVERLOADED_WAIT_MS = 2000
_JOB_ID = re.compile(r"^[0-9A-F]{32}$")
_MAX_NAME = 150


# --- output keys -------------------------------------------------------------------------


def output_name(file_name: str | None, job_id: str) -> tuple[str, str]:
    """(safe base name, video extension) for a FileName; the job id when none is usable.

    Only a trailing ``.mp4``/``.ts`` is an extension (``0.0993375889`` in the contract's
    example is part of the name); every character outside letters, digits and ``._-``
    becomes ``_``, so the name can never leave ``export/<job_id>/``.
    """
    ext = ".mp4"
    name = file_name or ""
    lower = name.lower()
    if lower.endswith(".ts"):
        ext, name = ".ts", name[:-3]
    elif lower.endswith(".mp4"):
        name = name[:-4]
    name = unicodedata.normalize("NFC", name)
    name = "".join(c if (c.isalnum() or c in "._-") else "_" for c in name)
    name = name.strip("._- ")[:_MAX_NAME].rstrip("._- ")
    return (name or job_id), ext


def output_keys(job_id: str, kind: Kind, file_name: str | None) -> tuple[str, str | None]:
    """Deterministic (image_key, video_key) of a job: a redelivery overwrites, never adds."""
    name, ext = output_name(file_name, job_id)
    image_key = f"{EXPORT_DIR}/{job_id}/{name}.jpg"
    video_key = f"{EXPORT_DIR}/{job_id}/{name}{ext}" if kind == "media" else None
    return image_key, video_key


def legacy_image_path(image_key: str) -> str:
    """ImagePath as the contract writes it: relative to S3Dir ("/<job_id>/<name>.jpg")."""
    prefix = EXPORT_DIR + "/"
    key = image_key.lstrip("/")
    return "/" + (key[len(prefix) :] if key.startswith(prefix) else key)


def legacy_video_path(video_key: str) -> str:
    """VideoPath as the contract writes it: "/export/<job_id>/<name>.mp4"."""
    return "/" + video_key.lstrip("/")


# --- status ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusUpdate:
    """One event on export.status: a stage says where a job is."""

    job_id: str
    state: State
    at_ms: int
    kind: Kind | None = None
    progress: float | None = None  # fraction (0..1) of this state's own work
    stage: str | None = None  # name for the timings; default: the state
    stage_start_ms: int | None = None
    stage_end_ms: int | None = None
    lack_length_ms: int | None = None  # requested minus what exists/was delivered, ms
    image_key: str | None = None
    video_key: str | None = None
    error: dict[str, Any] | None = None  # ExportError.to_dict(), for state "failed"
    request: dict[str, Any] | None = None  # the export.requests event (first report, re-drives)

    def __post_init__(self) -> None:
        _check_job_id(self.job_id)
        if self.state not in STATES:
            raise InvalidRequest(f"state {self.state!r} is not one of {STATES}", field="state")
        if self.kind is not None and self.kind not in ("thumbnail", "media"):
            raise InvalidRequest(f"kind {self.kind!r} is not thumbnail or media", field="kind")
        _check_int(self.at_ms, "at_ms")
        if self.progress is not None:
            _check_fraction(self.progress, "progress")
        for name in ("stage_start_ms", "stage_end_ms", "lack_length_ms"):
            if getattr(self, name) is not None:
                _check_int(getattr(self, name), name)
        for name in ("stage", "image_key", "video_key"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise InvalidRequest(f"{name} must be a string", field=name)
        if self.error is not None and not isinstance(self.error, dict):
            raise InvalidRequest("error must be an object", field="error")

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StatusUpdate:
        if not isinstance(d, dict):
            raise InvalidRequest("a status update must be an object", field="status")
        for name in ("job_id", "state", "at_ms"):
            if name not in d:
                raise InvalidRequest(f"status update without {name}", field=name)
        kwargs: dict[str, Any] = {f: d.get(f) for f in cls.__dataclass_fields__}
        return cls(**kwargs)


@dataclass
class JobStatus:
    """The value of the status table (stored as a dict via to_dict/from_dict)."""

    job_id: str
    kind: str
    state: State
    progress: float = 0.0  # of the whole job, 0..1; never decreases
    stages: dict[str, dict[str, int]] = field(default_factory=dict)  # stage → start_ms/end_ms
    lack_length_ms: int | None = None
    image_path: str | None = None
    video_path: str | None = None
    image_key: str | None = None
    video_key: str | None = None
    s3_dir: str = EXPORT_DIR
    version: str = VERSION
    error: dict[str, Any] | None = None
    updated_at_ms: int = 0
    # extensions: what TimeWait is estimated from
    state_progress: float = 0.0  # of the current state's own work
    state_since_ms: int = 0  # when the current state was entered
    created_at_ms: int = 0
    # the job's request (as on export.requests) and how often the supervisor re-drove it
    request: dict[str, Any] | None = None

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def to_dict(self) -> dict[str, Any]:
        d = {f: getattr(self, f) for f in self.__dataclass_fields__}
        d["stages"] = copy.deepcopy(self.stages)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JobStatus:
        if not isinstance(d, dict):
            raise InvalidRequest("a job status must be an object", field="status")
        for name in ("job_id", "kind", "state"):
            if name not in d:
                raise InvalidRequest(f"job status without {name}", field=name)
        _check_job_id(d["job_id"])
        if d["state"] not in STATES:
            raise InvalidRequest(f"state {d['state']!r} is not one of {STATES}", field="state")
        stages = d.get("stages") or {}
        if not isinstance(stages, dict) or not all(isinstance(v, dict) for v in stages.values()):
            raise InvalidRequest("stages must map stage names to timings", field="stages")
        known = {f: d[f] for f in cls.__dataclass_fields__ if f in d and d[f] is not None}
        known["stages"] = copy.deepcopy(stages)
        return cls(**known)


def accepted_update(req: ExportRequest, *, now_ms: int) -> StatusUpdate:
    """The first update of a job, sent when its request is accepted."""
    return StatusUpdate(
        job_id=req.job_id,
        state="accepted",
        at_ms=now_ms,
        kind=req.kind,
        progress=0.0,
        image_key=req.image_key,
        video_key=req.video_key,
        request=req.to_dict(),
    )


def failed_update(
    job_id: str, error: ExportError, *, now_ms: int, stage: str | None = None
) -> StatusUpdate:
    return StatusUpdate(
        job_id=job_id, state="failed", at_ms=now_ms, stage=stage, error=error.to_dict()
    )


def advance(status: JobStatus | None, update: StatusUpdate) -> JobStatus:
    """Fold ``update`` into ``status`` and return the new status (the input is not changed).

    Monotonic: done/failed are final (the first one wins); an update for an earlier state
    only adds stage timings; within a state progress only grows and a later-stamped update
    wins for LackLength.
    """
    if status is None:
        status = JobStatus(
            job_id=update.job_id,
            kind="",  # unknown until an update says (the accepted one does)
            state="accepted",
            created_at_ms=update.at_ms,
            state_since_ms=update.at_ms,
            updated_at_ms=update.at_ms,
        )
    elif status.job_id != update.job_id:
        raise InvalidRequest(
            f"update for job {update.job_id} applied to job {status.job_id}", field="job_id"
        )
    new = replace(status, stages=copy.deepcopy(status.stages))
    # Facts that do not depend on order (kind, deterministic keys, stage timings) are
    # merged even into a final status: a redelivered "accepted" may arrive after "done".
    new.kind = new.kind or update.kind or ""
    new.image_key = new.image_key or update.image_key
    new.video_key = new.video_key or update.video_key
    if update.request is not None and _attempt(update.request) >= _attempt(new.request):
        new.request = update.request
    _merge_timing(new, update)
    _set_paths(new)
    if status.final:
        return new if new != status else status

    old_rank, rank = _RANK[new.state], _RANK[update.state]
    if rank < old_rank:
        pass  # a late or redelivered update: its timings count, its state does not
    elif rank == old_rank and update.state == new.state:
        if update.progress is not None:
            new.state_progress = max(new.state_progress, update.progress)
        if update.lack_length_ms is not None and update.at_ms >= status.updated_at_ms:
            new.lack_length_ms = update.lack_length_ms
    elif update.state == "failed":
        new.state = "failed"
        new.error = update.error or ExportError("the job failed", obj=update.job_id).to_dict()
        _close_stage(new, status.state, update.at_ms)
        new.state_since_ms = update.at_ms
    else:
        _close_stage(new, status.state, update.at_ms)
        new.state = update.state
        new.state_since_ms = update.at_ms
        new.state_progress = update.progress or 0.0
        if update.lack_length_ms is not None:
            new.lack_length_ms = update.lack_length_ms
        if update.state == "done":
            new.state_progress = 1.0
            new.progress = 1.0
            if new.lack_length_ms is None:
                new.lack_length_ms = 0
    if new.state not in FINAL_STATES:
        lo, hi = _BANDS.get(new.kind, _BANDS["media"])[new.state]
        new.progress = max(new.progress, lo + (hi - lo) * new.state_progress)
    new.progress = min(1.0, new.progress)
    new.updated_at_ms = max(status.updated_at_ms, update.at_ms)
    return new


def _attempt(request: dict[str, Any] | None) -> int:
    attempt = (request or {}).get("attempt", -1)
    return attempt if isinstance(attempt, int) else -1


def _set_paths(status: JobStatus) -> None:
    if status.image_key:
        status.image_path = legacy_image_path(status.image_key)
    if status.video_key:
        status.video_path = legacy_video_path(status.video_key)


def _merge_timing(status: JobStatus, update: StatusUpdate) -> None:
    name = update.stage or update.state
    start = update.stage_start_ms
    if start is None and update.stage is None and update.state not in FINAL_STATES:
        start = update.at_ms  # the first update of a state marks when it started
    if start is None and update.stage_end_ms is None:
        return
    entry = status.stages.setdefault(name, {})
    if start is not None:
        entry["start_ms"] = min(entry.get("start_ms", start), start)
    if update.stage_end_ms is not None:
        entry["end_ms"] = max(entry.get("end_ms", update.stage_end_ms), update.stage_end_ms)


def _close_stage(status: JobStatus, state: str, at_ms: int) -> None:
    entry = status.stages.get(state)
    if entry is not None and "end_ms" not in entry:
        entry["end_ms"] = max(at_ms, entry.get("start_ms", at_ms))


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


# --- the legacy body ---------------------------------------------------------------------


def legacy_response(
    req: ExportRequest | None,
    status: JobStatus | None,
    *,
    error: ExportError | None = None,
    now_ms: int,
) -> dict[str, Any]:
    """The body POST /export (and GET /export/{job_id}) answers with; HTTP is always 200.

    ErrorCode 0: thumbnail ready; 1: "Work Not Finish"; 5: media ready; negative: the
    error's code (see pipeline.errors).  Every body carries ``JobId`` ("" when the request
    was too broken to have one).
    """
    job_id = req.job_id if req is not None else (status.job_id if status is not None else "")
    if req is not None:
        kind: str = req.kind
    elif status is not None and status.kind:
        kind = status.kind
    else:
        kind = "media" if status is not None and status.video_key else "thumbnail"
    image_key = (status.image_key if status else None) or (req.image_key if req else None)
    video_key = (status.video_key if status else None) or (req.video_key if req else None)
    image_path = legacy_image_path(image_key) if image_key else ""
    video_path = legacy_video_path(video_key) if video_key else ""

    if error is None and status is not None and status.state == "failed":
        error = error_from_dict(status.error or {})
    if error is not None:
        body = _error_body(error)
        if req is not None or status is not None:
            body.update({"ImagePath": image_path, "S3Dir": EXPORT_DIR})
            if kind == "media":
                body.update({"VideoPath": video_path, "Version": VERSION, "LackLength": 0})
        body["JobId"] = job_id
        return body

    if status is not None and status.state == "done":
        lack = status.lack_length_ms or 0
        if kind == "thumbnail":
            return {
                "TimeWait": 0,
                "ErrorCode": 0,
                "ErrorMessage": "Success",
                "ImagePath": image_path,
                "S3Dir": EXPORT_DIR,
                "JobId": job_id,
            }
        return {
            "TimeWait": 0,
            "ErrorCode": 5,
            "ErrorMessage": "Success",
            "ImagePath": image_path,
            "VideoPath": video_path,
            "Version": status.version or VERSION,
            "S3Dir": EXPORT_DIR,
            "LackLength": lack,
            "JobId": job_id,
        }

    return {
        "TimeWait": estimate_time_wait_ms(status, kind=kind, now_ms=now_ms),
        "ErrorCode": 1,
        "ErrorMessage": "Work Not Finish",
        "ImagePath": image_path,
        "S3Dir": EXPORT_DIR,
        # Unknown until the archive has been resolved: 0 rather than a guess.
        "LackLength": (status.lack_length_ms or 0) if status is not None else 0,
        "State": status.state if status is not None else "accepted",
        "Progress": round(status.progress, 3) if status is not None else 0.0,
        "JobId": job_id,
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


_ERROR_TYPES: dict[str, type[ExportError]] = {
    cls.__name__: cls
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, ExportError)
}


def error_from_dict(d: dict[str, Any]) -> ExportError:
    """Rebuild an ExportError from ExportError.to_dict() (as stored in a failed status)."""
    cls = _ERROR_TYPES.get(str(d.get("type")))
    code = d.get("code")
    if cls is None:
        cls = next(
            (c for c in _ERROR_TYPES.values() if c.code == code and c is not ExportError),
            ExportError,
        )
    message = str(d.get("message") or "the job failed")
    field_name = d.get("field") if isinstance(d.get("field"), str) else None
    obj = d.get("object") if isinstance(d.get("object"), str) else None
    err = cls(message, field=field_name, obj=obj)
    # to_dict's message already ends with the "(field X, obj)" suffix: don't add it twice.
    suffix = str(err)[len(message) :]
    if suffix and message.endswith(suffix):
        err = cls(message[: -len(suffix)], field=field_name, obj=obj)
    if cls is ExportError and isinstance(code, int) and not isinstance(code, bool) and code < 0:
        err.code = code
    return err


def _check_job_id(value: object) -> None:
    if not isinstance(value, str) or not _JOB_ID.match(value):
        raise InvalidRequest(f"job_id {value!r} is not 32 upper-case hex digits", field="job_id")


def _check_int(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{name} must be an integer, got {value!r}", field=name)


def _check_fraction(value: object, name: str) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0.0 <= value <= 1.0
    ):
        raise InvalidRequest(f"{name} must be a number 0..1, got {value!r}", field=name)


__all__ = [
    "EXPORT_DIR",
    "FINAL_STATES",
    "STATES",
    "VERSION",
    "JobStatus",
    "Kind",
    "State",
    "StatusUpdate",
    "accepted_update",
    "advance",
    "error_from_dict",
    "estimate_time_wait_ms",
    "failed_update",
    "legacy_image_path",
    "legacy_response",
    "legacy_video_path",
    "output_keys",
    "output_name",
]
