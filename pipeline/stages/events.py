"""Building the events the stages exchange, as the typed definitions in ``schemas``.

A stage takes the event its agent decoded (a :class:`~schemas.StageTask` or
:class:`~schemas.UploadTask`) and returns the next one; :func:`schemas.encode` validates each
against its topic on send.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from schemas import STATUS, Artifact, ErrorInfo, StatusEvent, UploadTask, convert

if TYPE_CHECKING:
    from pipeline.errors import ExportError
    from schemas.events import State, Timings
    from schemas.request import ExportRequest


def status_event(job_id: str, state: State, *, at_ms: int, **fields: Any) -> StatusEvent:
    """An export.status report, checked against the topic's rules as it is built (the status
    agent folds it with pipeline.jobs.advance).  A job's first report carries ``request``,
    for the supervisor's re-drive."""
    event = msgspec.to_builtins({"job_id": job_id, "state": state, "at_ms": at_ms, **fields})
    report: StatusEvent = convert(STATUS, event)
    return report


def upload_task(
    req: ExportRequest | None,
    *,
    artifacts: list[Artifact] | None = None,
    timings: Timings | None = None,
    delivered_ms: int = 0,
    missing_ms: int = 0,
    lack_length_ms: int = 0,
    gaps: list[dict[str, Any]] | None = None,
    error: ExportError | None = None,
    job_id: str | None = None,
) -> UploadTask:
    """The export.uploads event: staged artifacts, or the error a stage failed with
    (``req`` None with ``job_id``: the job's own event was refused, so only its id is known)."""
    if req is not None:
        job_id = req.job_id
    if job_id is None:
        raise ValueError("upload_task needs a request or a job_id")
    return UploadTask(
        job_id=job_id,
        request=req,
        artifacts=artifacts or [],
        delivered_ms=delivered_ms,
        missing_ms=missing_ms,
        lack_length_ms=lack_length_ms,
        gaps=gaps or [],
        timings=timings or {},
        error=ErrorInfo.of(error) if error is not None else None,
    )


def lack_ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


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
