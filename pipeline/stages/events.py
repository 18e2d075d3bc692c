"""Building and reading the events the stages exchange (dicts matching schemas/)."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.jobs import State, StatusUpdate
from schemas import SCHEMA_VERSION

if TYPE_CHECKING:
    from pipeline.errors import ExportError
    from pipeline.legacy import ExportRequest


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
    """The export.uploads event: staged artifacts, or the error a stage failed with."""
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
