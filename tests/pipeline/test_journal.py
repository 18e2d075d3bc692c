"""The one-box journal: what it writes as a job goes by, and what it forgets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.journal import Journal

JOB = "0" * 31 + "1"


def row(state: str, at_ms: int) -> dict[str, Any]:
    return {"state": state, "request": {"job_id": JOB}, "updated_at_ms": at_ms}


def test_a_job_is_journaled_when_first_seen_and_when_it_ends(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    for state in ("accepted", "resolving", "grabbing", "done", "done"):
        journal.record(JOB, row(state, 1))
    lines = (tmp_path / "journal.jsonl").read_bytes().splitlines()
    assert len(lines) == 2
    assert journal.load()[JOB]["state"] == "done"


def test_a_new_job_under_an_expired_id_is_journaled_again(tmp_path: Path) -> None:
    # The replica drops the finished job past its TTL (the listener passes None); the same
    # body then starts a new job with the same JobId, which a restart must bring back.
    journal = Journal(tmp_path / "journal.jsonl")
    journal.record(JOB, row("accepted", 1))
    journal.record(JOB, row("done", 2))
    journal.record(JOB, None)
    journal.record(JOB, row("accepted", 3))
    assert journal.load()[JOB]["state"] == "accepted"


def test_dropped_jobs_leave_nothing_behind_in_memory(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    for n in range(50):
        job = f"{n:032X}"
        journal.record(job, row("accepted", n) | {"request": {"job_id": job}})
        journal.record(job, row("done", n) | {"request": {"job_id": job}})
        journal.record(job, None)
    assert journal._written == {}
    assert len(journal.load()) == 50  # the file keeps them until the next start compacts it
