"""Job status: states, the status row and the monotonic update rule.

A job's status is the value of the status table, keyed by ``job_id``.  Every stage sends
:class:`~schemas.StatusEvent` reports; :func:`advance` folds them in so that a redelivered,
duplicated or out-of-order report never moves a job backwards.  How a status is answered to a legacy
caller is pipeline/legacy/response.py (the contract renders job states, not the reverse).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, replace
from typing import Any, get_args

import msgspec

from pipeline import errors
from pipeline.errors import ExportError, InvalidRequest
from schemas.events import ErrorInfo, State, StatusEvent
from schemas.request import JOB_ID_PATTERN, ExportRequest, Kind

STATES: tuple[State, ...] = get_args(State)
FINAL_STATES: frozenset[State] = frozenset({"done", "failed"})
# Order in which a job moves; a parallel stage that is "behind" (a media job's first-frame
# grab while it already transcodes) still records its timings but does not move the state.
# done and failed rank alike: whichever comes first is final.
_RANK = {s: 99 if s in FINAL_STATES else i for i, s in enumerate(STATES)}
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

_JOB_ID = re.compile(JOB_ID_PATTERN)


# --- status ------------------------------------------------------------------------------


@dataclass
class JobStatus:
    """The value of the status table (stored as a dict via to_dict/from_dict)."""

    job_id: str
    kind: str
    state: State
    progress: float = 0.0  # of the whole job, 0..1; never decreases
    stages: dict[str, dict[str, int]] = field(default_factory=dict)  # stage → start_ms/end_ms
    lack_length_ms: int | None = None
    image_key: str | None = None
    video_key: str | None = None
    error: dict[str, Any] | None = None
    updated_at_ms: int = 0
    # extensions: what TimeWait is estimated from
    state_progress: float = 0.0  # of the current state's own work
    state_since_ms: int = 0  # when the current state was entered
    created_at_ms: int = 0
    # the job's request (as on export.requests) and how often the supervisor re-drove it
    request: dict[str, Any] | None = None
    # a split clip (README "Long clips split across workers"): its chunk count, and each
    # chunk's own progress by index; the transcoding progress is their mean
    chunks: int = 0
    chunk_progress: dict[str, float] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def to_dict(self) -> dict[str, Any]:
        d = {f: getattr(self, f) for f in self.__dataclass_fields__}
        d["stages"] = copy.deepcopy(self.stages)
        d["chunk_progress"] = dict(self.chunk_progress)
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
        known["chunk_progress"] = dict(d.get("chunk_progress") or {})
        return cls(**known)


def accepted_update(req: ExportRequest, *, now_ms: int) -> StatusEvent:
    """The first report of a job, sent when its request is accepted."""
    return StatusEvent(
        job_id=req.job_id,
        state="accepted",
        at_ms=now_ms,
        kind=req.kind,
        progress=0.0,
        image_key=req.image_key,
        video_key=req.video_key,
        request=req,
    )


def failed_update(
    job_id: str, error: ExportError, *, now_ms: int, stage: str | None = None
) -> StatusEvent:
    info = ErrorInfo.of(error)
    return StatusEvent(job_id=job_id, state="failed", at_ms=now_ms, stage=stage, error=info)


def advance(status: JobStatus | None, update: StatusEvent) -> JobStatus:
    """Fold ``update`` into ``status`` and return the new status (the input is not changed).

    Monotonic: done/failed are final (the first one wins); an update for an earlier state
    only adds stage timings; within a state progress only grows and a later-stamped update
    wins for LackLength.
    """
    old = _status_for(status, update)
    new = replace(old, stages=copy.deepcopy(old.stages), chunk_progress=dict(old.chunk_progress))
    _merge_facts(new, update)
    if old.final:
        return new if new != old else old
    _fold_state(new, old, _chunk_share(new, update))
    if new.state not in FINAL_STATES:
        lo, hi = _BANDS.get(new.kind, _BANDS["media"])[new.state]
        new.progress = max(new.progress, lo + (hi - lo) * new.state_progress)
    new.progress = min(1.0, new.progress)
    new.updated_at_ms = max(old.updated_at_ms, update.at_ms)
    return new


def _status_for(status: JobStatus | None, update: StatusEvent) -> JobStatus:
    """``status``, or a fresh one when ``update`` is the first a job has seen."""
    if status is None:
        return JobStatus(
            job_id=update.job_id,
            kind="",  # unknown until an update says (the accepted one does)
            state="accepted",
            created_at_ms=update.at_ms,
            state_since_ms=update.at_ms,
            updated_at_ms=update.at_ms,
        )
    if status.job_id != update.job_id:
        raise InvalidRequest(
            f"update for job {update.job_id} applied to job {status.job_id}", field="job_id"
        )
    return status


def _merge_facts(new: JobStatus, update: StatusEvent) -> None:
    """Facts that do not depend on order (kind, deterministic keys, the latest attempt's
    request, stage timings): merged even into a final status, since a redelivered
    "accepted" may arrive after "done"."""
    new.kind = new.kind or update.kind or ""
    new.image_key = new.image_key or update.image_key
    new.video_key = new.video_key or update.video_key
    if update.request is not None and update.request.attempt >= _attempt(new.request):
        new.request = msgspec.to_builtins(update.request)
    _merge_timing(new, update)


def _fold_state(new: JobStatus, old: JobStatus, update: StatusEvent) -> None:
    """Move a job that is not final by ``update``'s state, never backwards."""
    old_rank, rank = _RANK[new.state], _RANK[update.state]
    if rank < old_rank:
        return  # a late or redelivered update: its timings count, its state does not
    if rank == old_rank and update.state == new.state:
        if update.progress is not None:
            new.state_progress = max(new.state_progress, update.progress)
        if update.lack_length_ms is not None and update.at_ms >= old.updated_at_ms:
            new.lack_length_ms = update.lack_length_ms
    elif update.state == "failed":
        new.state = "failed"
        error = update.error
        new.error = (
            msgspec.to_builtins(error)
            if error is not None
            else ExportError("the job failed", obj=update.job_id).to_dict()
        )
        _close_stage(new, old.state, update.at_ms)
        new.state_since_ms = update.at_ms
    else:
        _enter_state(new, old, update)


def _chunk_share(new: JobStatus, update: StatusEvent) -> StatusEvent:
    """A chunk's report as the whole state's: its progress becomes the mean over all chunks
    (each chunk's own only grows), so chunks finishing in any order move the job forward."""
    if update.chunks is not None:
        new.chunks = max(new.chunks, update.chunks)
    if update.chunk is None or update.progress is None:
        return update
    key = str(update.chunk)
    new.chunk_progress[key] = max(new.chunk_progress.get(key, 0.0), update.progress)
    share = sum(new.chunk_progress.values()) / max(new.chunks, len(new.chunk_progress))
    return msgspec.structs.replace(update, progress=min(1.0, share))


def _enter_state(new: JobStatus, old: JobStatus, update: StatusEvent) -> None:
    _close_stage(new, old.state, update.at_ms)
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


def _attempt(request: dict[str, Any] | None) -> int:
    attempt = (request or {}).get("attempt", -1)
    return attempt if isinstance(attempt, int) else -1


def _merge_timing(status: JobStatus, update: StatusEvent) -> None:
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


# --- the stored error ------------------------------------------------------------------


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


__all__ = [
    "FINAL_STATES",
    "STATES",
    "JobStatus",
    "Kind",
    "State",
    "accepted_update",
    "advance",
    "error_from_dict",
    "failed_update",
]
