"""Building and reading the events the stages exchange (dicts that schemas/ validates on
every send, see :func:`schemas.encode`)."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.jobs import State, StatusUpdate
from schemas import REQUESTS, SCHEMA_VERSION, convert

if TYPE_CHECKING:
    from pipeline.errors import ExportError
    from schemas.request import ExportRequest


def request_from_event(event: dict[str, Any] | ExportRequest) -> ExportRequest:
    """The request inside an event, by the rules of export.requests (InvalidEvent if not)."""
    req: ExportRequest = convert(REQUESTS, event)
    return req


def request_event(req: ExportRequest) -> dict[str, Any]:
    """The export.requests event for a request (what the ingress publishes)."""
    return req.to_dict()


def status_event(job_id: str, state: State, *, at_ms: int, **fields: Any) -> dict[str, Any]:
    """An export.status event; StatusUpdate validates it (the status agent folds it).
    A job's first report carries ``request`` (as a dict), for the supervisor's re-drive."""
    update = StatusUpdate(job_id=job_id, state=state, at_ms=at_ms, **fields)
    return {"schema_version": SCHEMA_VERSION, **update.to_dict()}


def upload_task(
    req: ExportRequest | None,
    *,
    artifacts: list[dict[str, Any]] | None = None,
    timings: dict[str, dict[str, int]] | None = None,
    delivered_ms: int = 0,
    missing_ms: int = 0,
    lack_length_ms: int = 0,
    gaps: list[Any] | None = None,
    error: ExportError | None = None,
    job_id: str | None = None,
) -> dict[str, Any]:
    """The export.uploads event: staged artifacts, or the error a stage failed with
    (``req`` None with ``job_id``: the job's own event was refused, so only its id is known)."""
    if req is None and job_id is None:
        raise ValueError("upload_task needs a request or a job_id")
    return {
        "schema_version": SCHEMA_VERSION,
        "job_id": req.job_id if req is not None else job_id,
        "request": request_event(req) if req is not None else None,
        "artifacts": artifacts or [],
        "delivered_ms": delivered_ms,
        "missing_ms": missing_ms,
        "lack_length_ms": lack_length_ms,
        "gaps": gaps or [],
        "timings": timings or {},
        "error": error.to_dict() if error is not None else None,
    }


def lack_ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def task_timings(task: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {k: dict(v) for k, v in (task.get("timings") or {}).items()}


def facts(result: Any) -> dict[str, Any]:
    """A media result as JSON-ready facts for the events (without worker-local paths)."""
    data = dict(result.to_dict()) if hasattr(result, "to_dict") else asdict(result)
    data.pop("path", None)  # a worker-local scratch path means nothing downstream
    return {k: jsonable(v) for k, v in data.items()}


def jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)
