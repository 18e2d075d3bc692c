"""Every job that has a job_id ends: in exactly one export.completed and a final status.

Three ways a job can fail, one ending for each:
- a stage raises: :func:`fail_job` hands the error to the upload stage as an UploadTask
  with ``error`` set (it drops the job's staging copies, then publishes);
- an event is refused (it does not match its topic's definition) or an agent breaks while
  handling it: :func:`refuse` dead-letters it and, when its job_id can be read,
  :func:`finish_failed` publishes the failed completion right away;
- a job stalls: the supervisor (agents/supervisor.py) re-drives it, then fails it here.

Exactly one export.completed per job, by construction: export.completed *is* the changelog
of the ``completed`` table (keyed by job_id, compacted), so recording a job as completed and
publishing its completed event are one write (:func:`complete`).  faust flushes that write
before it commits the offset of the event being handled, and rebuilds the table from the
topic before a worker that takes a partition over handles its events: a redelivered event
finds the job completed, whether the crash came before or after the commit.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import msgspec

import schemas
from agents.deadletter import dead_letter
from pipeline.errors import ExportError
from pipeline.stages.events import upload_task
from pipeline.stages.upload import completed_event, final_status
from schemas import COMPLETED, REQUESTS, STATUS, UPLOADS, job_id_hint

if TYPE_CHECKING:
    from agents.pipe import Pipeline
    from schemas import CompletedEvent, StatusEvent
    from schemas.request import ExportRequest

log = logging.getLogger(__name__)


def as_export_error(exc: BaseException, job_id: str | None) -> ExportError:
    if isinstance(exc, ExportError):
        return exc
    log.exception("job %s: unexpected error", job_id, exc_info=exc)
    return ExportError(f"internal error: {type(exc).__name__}: {exc}", obj=job_id)


async def fail_job(pipe: Pipeline, req: ExportRequest, error: ExportError, *, stage: str) -> None:
    log.info("job %s failed in %s: %s", req.job_id, stage, error)
    await pipe.send(UPLOADS, req.job_id, upload_task(req, error=error))


async def finish_failed(
    pipe: Pipeline, job_id: str, req: ExportRequest | None, error: ExportError
) -> None:
    """Publish the failed completion and final status of a job, unless it has ended."""
    if pipe.completed.get(job_id) is not None:
        return
    assert pipe.ctx is not None
    now = pipe.ctx.clock()
    task = upload_task(req, error=error, job_id=job_id)
    completed = completed_event(task, outputs={}, error=task.error, end_ms=now)
    await complete(pipe, job_id, completed, final_status(completed))


async def complete(
    pipe: Pipeline,
    job_id: str,
    completed: CompletedEvent,
    final: StatusEvent,
    *,
    redelivered: bool = False,
) -> None:
    """Publish the job's one export.completed (the completed table's write), then its final
    status (sent again on any redelivery, so a crash between the two loses neither).

    ``redelivered``: the caller handles an event that comes again if this process dies
    before its offset is committed (the upload agent), and the commit flushes the producer
    first, so the final status need not wait for its ack: a waiting POST answers one broker
    round trip sooner.  A timer (the supervisor) has no such event: it waits for the ack."""
    # Validated like any send: the table's changelog is the export.completed topic.
    pipe.completed[job_id] = msgspec.to_builtins(schemas.convert(COMPLETED, completed))
    await pipe.flush()  # whoever sees the final status can find the completed event
    await pipe.send(STATUS, job_id, final, acked=not redelivered)
    log.info("job %s %s", job_id, completed.outcome)


async def refuse(pipe: Pipeline, event: Any, topic: str, error: ExportError) -> None:
    """Dead-letter an event no stage can use, and end its job when that is safe.

    On export.requests a refused event ends its job only while nobody knows the job (a
    broken copy of a running job's request must not fail it); on the topics between stages
    the event is the job's own next step, so without it the job would never end."""
    await dead_letter(pipe, event, str(error), error)
    job_id = job_id_hint(event.value, event.key)
    if job_id is None or topic == STATUS:
        return  # a lost progress report: the supervisor notices if the job stalls
    if topic == REQUESTS and pipe.status.get(job_id) is not None:
        return
    await finish_failed(pipe, job_id, None, error)


async def after_crash(pipe: Pipeline, event: Any, topic: str, exc: BaseException) -> None:
    """An agent broke on one event: say so, end the job, and let the loop go on."""
    error = as_export_error(exc, job_id_hint(event.value, event.key))
    try:
        await dead_letter(pipe, event, f"agent failed: {error}", error)
        job_id = job_id_hint(event.value, event.key)
        if job_id is not None and topic != STATUS:
            await finish_failed(pipe, job_id, None, error)
    except Exception:  # the broker is gone too: the supervisor re-drives the job later
        log.exception("could not end the job of a failed %s event", topic)
