"""A timer on every worker that forgets finished jobs after EXPORT_JOB_TTL_MS (see
pipeline/retention.py): deleting table keys writes changelog tombstones."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pipeline.retention import prune_interval_s, prune_tables

if TYPE_CHECKING:
    from agents.pipe import Pipeline

log = logging.getLogger(__name__)


def register(pipe: Pipeline) -> None:
    ttl_ms = pipe.settings.job_ttl_ms

    @pipe.app.timer(prune_interval_s(ttl_ms), name="retention")
    async def prune_finished_jobs() -> None:
        prune(pipe)


def prune(pipe: Pipeline) -> dict[str, int]:
    assert pipe.ctx is not None
    dropped = prune_tables(
        pipe.status,
        pipe.seen,
        pipe.completed,
        now_ms=pipe.ctx.clock(),
        ttl_ms=pipe.settings.job_ttl_ms,
    )
    if any(dropped.values()):
        log.info("retention: forgot %s", ", ".join(f"{n} {t}" for t, n in dropped.items()))
    return dropped
