"""export.status → the status table (changelog-backed), folded with pipeline.jobs.advance."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import schemas
from agents.deadletter import dead_letter
from agents.guard import handle_guarded
from pipeline.errors import ExportError
from pipeline.jobs import JobStatus, advance
from schemas import STATUS

if TYPE_CHECKING:
    from agents.pipe import Pipeline

log = logging.getLogger(__name__)


def register(pipe: Pipeline) -> None:
    @pipe.app.agent(pipe.topic(STATUS), name="status")
    async def status_agent(stream: Any) -> None:
        async for event in stream.events():
            await handle_guarded(pipe, event, STATUS, handle)


async def handle(pipe: Pipeline, event: Any) -> None:
    try:
        update = schemas.decode(STATUS, event.value)
    except ExportError as e:
        await dead_letter(pipe, event, str(e), e)
        return
    current = pipe.status.get(update.job_id)
    old = JobStatus.from_dict(current) if current is not None else None
    new = advance(old, update)
    if old is None or new.to_dict() != current:
        pipe.status[update.job_id] = new.to_dict()
        if old is None or new.state != old.state:
            log_state_change(old, new)


def log_state_change(old: JobStatus | None, new: JobStatus) -> None:
    """One line per state change of a job, from the one agent that owns its row (so once
    cluster-wide): the state it left, the ms it spent there, and where it went; the same
    fields go to the JSON log as keys."""
    fields: dict[str, Any] = {}
    if old is not None:
        fields["stage"] = old.state
        fields["ms"] = max(0, new.state_since_ms - old.state_since_ms)
    fields["outcome"] = new.state
    failed = new.state == "failed"
    if failed:
        fields["error_code"] = (new.error or {}).get("code")
    text = " ".join(f"{k}={v}" for k, v in fields.items())
    level = logging.WARNING if failed else logging.INFO
    log.log(level, "job %s %s", new.job_id, text, extra={"job_id": new.job_id, **fields})
