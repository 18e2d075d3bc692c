"""The one-box journal: what `mediaexport up` must remember across a restart.

The embedded broker keeps everything in memory, so without this a restart of `up` forgets
every job: finished ones would answer -1, unfinished ones would never run.  The ingress
appends a job's status row here when it first sees the job (the row carries the request)
and when the job ends; on start, :func:`restore_events` turns the latest row of each job back
into events: a finished job's status (polls answer as before), an unfinished job's request
(it runs again: deterministic output keys make the repeat safe, and it ends with one
completed event on the new broker).  On a real Kafka cluster the topics are durable and the
journal is not used.

One JSON object per line, appended and flushed per record (a kill -9 loses nothing the OS
has; a torn last line is skipped on load).  :meth:`Journal.compact` rewrites the file with
one line per job on start, so it grows with the jobs of one run, not forever.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from pipeline.jobs import FINAL_STATES
from pipeline.retention import expired_status

Event = tuple[str, str, Any]  # (topic, job_id, event: a Struct or its dict)


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._written: dict[str, str] = {}  # job_id -> state last journaled

    def record(self, job_id: str, row: Mapping[str, Any] | None) -> None:
        """Journal a status row when the job is new to the journal or has just ended;
        ``None`` (the replica dropped the job past its retention) forgets it."""
        if row is None:
            # Keeps this map as small as the replica, and lets a new job under the same id
            # (the same body after the TTL) be journaled again instead of passing for done.
            self._written.pop(job_id, None)
            return
        if not isinstance(row.get("request"), dict):
            return  # nothing to run again without the request
        state = str(row.get("state"))
        last = self._written.get(job_id)
        final = state in FINAL_STATES
        if last is not None and (last in FINAL_STATES or not final):
            return
        with self.path.open("ab") as f:
            f.write(orjson.dumps({"job_id": job_id, "row": row}) + b"\n")
            f.flush()
        self._written[job_id] = state

    def load(self) -> dict[str, dict[str, Any]]:
        """The latest journaled row of every job (a torn or foreign line is skipped)."""
        rows: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return rows
        for line in self.path.read_bytes().splitlines():
            with contextlib.suppress(orjson.JSONDecodeError):
                entry = orjson.loads(line)
                if isinstance(entry, dict) and isinstance(entry.get("row"), dict):
                    rows[str(entry.get("job_id"))] = entry["row"]
        return rows

    def compact(self, *, now_ms: int, ttl_ms: int) -> dict[str, dict[str, Any]]:
        """Rewrite the file with one line per job, without jobs past their retention."""
        rows = self.load()
        for job_id in expired_status(rows, now_ms=now_ms, ttl_ms=ttl_ms):
            del rows[job_id]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(
            b"".join(orjson.dumps({"job_id": j, "row": r}) + b"\n" for j, r in rows.items())
        )
        os.replace(tmp, self.path)
        self._written = {j: str(r.get("state")) for j, r in rows.items()}
        return rows


def restore_events(rows: Mapping[str, Mapping[str, Any]], *, now_ms: int) -> list[Event]:
    """Events that bring journaled jobs back on a fresh broker (see the module docstring)."""
    from pipeline.stages.events import status_event
    from schemas import REQUESTS, STATUS

    out: list[Event] = []
    for job_id, row in rows.items():
        request = row["request"]
        state = row.get("state")
        first = status_event(
            job_id,
            "accepted",
            at_ms=int(row.get("created_at_ms") or now_ms),
            kind=row.get("kind") or request.get("kind"),
            image_key=row.get("image_key"),
            video_key=row.get("video_key"),
            request=request,
        )
        out.append((STATUS, job_id, first))
        if state == "done":
            done = status_event(
                job_id,
                "done",
                at_ms=int(row.get("updated_at_ms") or now_ms),
                lack_length_ms=row.get("lack_length_ms") or 0,
            )
            out.append((STATUS, job_id, done))
        elif state == "failed":
            failed = status_event(
                job_id, "failed", at_ms=int(row.get("updated_at_ms") or now_ms), error=row["error"]
            )
            out.append((STATUS, job_id, failed))
        else:
            out.append((REQUESTS, job_id, request))
    return out
