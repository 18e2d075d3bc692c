"""A job that fails in any stage still ends in exactly one export.completed: the failure
travels to the upload agent as an UploadTask with ``error`` set."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pipeline.errors import ExportError
from pipeline.stages.events import upload_task

if TYPE_CHECKING:
    from pipeline.app import Pipeline
    from pipeline.legacy import ExportRequest

log = logging.getLogger(__name__)


def as_export_error(exc: BaseException, job_id: str) -> ExportError:
    if isinstance(exc, ExportError):
        return exc
    log.exception("job %s: unexpected error", job_id, exc_info=exc)
    return ExportError(f"internal error: {type(exc).__name__}: {exc}", obj=job_id)


async def fail_job(pipe: Pipeline, req: ExportRequest, error: ExportError, *, stage: str) -> None:
    from schemas import UPLOADS

    log.info("job %s failed in %s: %s", req.job_id, stage, error)
    await pipe.send(UPLOADS, req.job_id, upload_task(req, error=error))
