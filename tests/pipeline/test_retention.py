"""Forgetting finished jobs: which table entries expire when, on plain dicts (a faust Table
is a MutableMapping whose ``del`` writes the changelog tombstone)."""

from __future__ import annotations

from typing import Any

from pipeline.jobs import JobStatus
from pipeline.retention import (
    REPLICA_GRACE_MS,
    STATUS_GRACE_MS,
    expired_status,
    prune_interval_s,
    prune_tables,
)

HOUR = 3600 * 1000
TTL = 24 * HOUR
NOW = 1_800_000_000_000


def _row(job_id: str, state: str, updated_at_ms: int) -> dict[str, Any]:
    row = JobStatus(job_id=job_id, kind="media", state=state).to_dict()  # type: ignore[arg-type]
    row["updated_at_ms"] = updated_at_ms
    return row


def _tables() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    old = NOW - TTL - STATUS_GRACE_MS - 1  # finished (and submitted) past TTL + grace
    status = {
        "OLD_DONE": _row("OLD_DONE", "done", old),
        "OLD_FAILED": _row("OLD_FAILED", "failed", old),
        "RECENT_DONE": _row("RECENT_DONE", "done", NOW - HOUR),
        "OLD_RUNNING": _row("OLD_RUNNING", "transcoding", old),
        # past the TTL but within the status grace: seen/completed go first
        "IN_GRACE": _row("IN_GRACE", "done", NOW - TTL - 1000),
    }
    seen = {job: {"at": [0, 1], "ms": old} for job in status} | {
        "RECENT_DONE": {"at": [0, 2], "ms": NOW - 2 * HOUR},
        "ORPHAN": {"at": [0, 3], "ms": old},  # its status row lives on another worker
    }
    completed = {
        "OLD_DONE": {"outcome": "ok", "completed_at_ms": old},
        "OLD_FAILED": {"outcome": "failed", "completed_at_ms": old},
        "RECENT_DONE": {"outcome": "ok", "completed_at_ms": NOW - HOUR},
        "IN_GRACE": {"outcome": "ok", "completed_at_ms": NOW - TTL - 900},
    }
    return status, seen, completed


def test_finished_jobs_past_the_ttl_are_deleted_from_every_table() -> None:
    status, seen, completed = _tables()
    dropped = prune_tables(status, seen, completed, now_ms=NOW, ttl_ms=TTL)
    assert sorted(status) == ["IN_GRACE", "OLD_RUNNING", "RECENT_DONE"]
    # seen: expired unless the job still runs; completed: expired by its own time
    assert sorted(seen) == ["OLD_RUNNING", "RECENT_DONE"]
    assert sorted(completed) == ["RECENT_DONE"]
    assert dropped == {"seen": 4, "completed": 3, "status": 2}
    # once the grace has passed, the status row goes too; nothing else changes
    later = NOW + STATUS_GRACE_MS
    assert prune_tables(status, seen, completed, now_ms=later, ttl_ms=TTL)["status"] == 1
    assert sorted(status) == ["OLD_RUNNING", "RECENT_DONE"]
    assert prune_tables(status, seen, completed, now_ms=later, ttl_ms=TTL) == {
        "seen": 0,
        "completed": 0,
        "status": 0,
    }


def test_the_status_row_never_outlives_its_guards_the_other_way_round() -> None:
    # Walk time forward: whenever a status row is gone, its seen and completed entries are
    # gone too (else a new job for the same id would be skipped or never finish).
    status, seen, completed = _tables()
    for step in range(0, 2 * STATUS_GRACE_MS, 30_000):
        prune_tables(status, seen, completed, now_ms=NOW + step, ttl_ms=TTL)
        for job in ("OLD_DONE", "OLD_FAILED", "IN_GRACE"):
            if job not in status:
                assert job not in seen and job not in completed


def test_expired_status_and_the_replica_backstop() -> None:
    status, _, _ = _tables()
    assert sorted(expired_status(status, now_ms=NOW, ttl_ms=TTL)) == [
        "IN_GRACE",
        "OLD_DONE",
        "OLD_FAILED",
    ]
    assert expired_status(status, now_ms=NOW, ttl_ms=TTL, grace_ms=REPLICA_GRACE_MS) == []
    assert REPLICA_GRACE_MS > STATUS_GRACE_MS  # replicas wait for the table's tombstones


def test_prune_interval_follows_short_ttls_and_is_at_most_a_minute() -> None:
    assert prune_interval_s(TTL) == 60.0
    assert prune_interval_s(60_000) == 6.0
    assert prune_interval_s(1000) == 1.0
