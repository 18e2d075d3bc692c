"""Forgetting finished jobs: the status, seen and completed tables (and every ingress's
replica of the status table) would otherwise grow by one row per job forever.

A finished (done/failed) job is dropped ``job_ttl_ms`` after it finished.  Deleting a key
from a faust Table writes a tombstone to its changelog, so replicas and restarted workers
forget it too.  Afterwards the same body POSTed again starts a new job with the same job_id,
whose deterministic output keys overwrite the old outputs.

Order matters, because the three tables guard each other: ``seen`` (resolve: one job per
job_id) and ``completed`` (upload: one export.completed per job) must be gone before the
status row, or a new job for an expired id would be skipped by resolve, or would never
reach ``done`` in upload, while the ingress already treats the id as unknown.  So seen and
completed entries expire at ``ttl``, status rows ``STATUS_GRACE_MS`` later, and a replica's
own backstop later still (it normally drops rows on the status table's tombstones).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from pipeline.jobs import FINAL_STATES

PRUNE_INTERVAL_S = 60.0  # how often a worker scans its tables (at most)
STATUS_GRACE_MS = 5 * 60 * 1000  # status rows outlive seen/completed entries by this
REPLICA_GRACE_MS = 2 * STATUS_GRACE_MS  # a replica's backstop waits for the tombstones


def prune_interval_s(ttl_ms: int) -> float:
    """Scan often enough for short TTLs (tests, small boxes), at most once a minute."""
    return max(1.0, min(PRUNE_INTERVAL_S, ttl_ms / 10_000))


def _ms(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def expired_status(
    rows: Mapping[str, Mapping[str, Any]], *, now_ms: int, ttl_ms: int, grace_ms: int = 0
) -> list[str]:
    """Job ids of status rows that finished more than ``ttl_ms + grace_ms`` ago."""
    cutoff = now_ms - ttl_ms - grace_ms
    out = []
    for job_id, row in list(rows.items()):
        if not isinstance(row, Mapping) or row.get("state") not in FINAL_STATES:
            continue
        finished = _ms(row.get("updated_at_ms"))
        if finished is not None and finished < cutoff:
            out.append(job_id)
    return out


def prune_tables(
    status: MutableMapping[str, Any],
    seen: MutableMapping[str, Any],
    completed: MutableMapping[str, Any],
    *,
    now_ms: int,
    ttl_ms: int,
) -> dict[str, int]:
    """Delete expired entries from the three tables (dicts or faust Tables: ``del``
    writes the changelog tombstone); return how many went from each."""
    cutoff = now_ms - ttl_ms
    dropped = {"seen": 0, "completed": 0, "status": 0}

    def unfinished(job_id: str) -> bool:
        row = status.get(job_id)
        return isinstance(row, Mapping) and row.get("state") not in FINAL_STATES

    # seen: submitted before the cutoff, unless the job is (locally known to be) running
    for job_id, entry in list(seen.items()):
        at = _ms(entry.get("ms")) if isinstance(entry, Mapping) else None
        if at is not None and at < cutoff and not unfinished(job_id):
            del seen[job_id]
            dropped["seen"] += 1
    # completed (export.completed events): finished before the cutoff
    for job_id, entry in list(completed.items()):
        at = _ms(entry.get("completed_at_ms")) if isinstance(entry, Mapping) else None
        if at is not None and at < cutoff:
            del completed[job_id]
            dropped["completed"] += 1
    # status last, and later (see the module docstring)
    for job_id in expired_status(status, now_ms=now_ms, ttl_ms=ttl_ms, grace_ms=STATUS_GRACE_MS):
        seen.pop(job_id, None)
        completed.pop(job_id, None)
        del status[job_id]
        dropped["status"] += 1
    return dropped
