"""The supervisor's rule: which unfinished jobs have stalled, and what to do about each.

A job stalls when its status has not moved for longer than its stage timeout: an event
lost with a killed worker, a stage that died without a word.  The stalled job is re-driven
(its request published again with ``attempt`` + 1; stages are idempotent and output keys
deterministic, so a repeat overwrites and never adds) up to :data:`MAX_REDRIVES` times, then
failed with an error that names the stage that stalled.  This is the net under the other
guarantees, not their replacement: every known failure already ends its job directly.

The timeout grows with what the job may legitimately be waiting for: the live-edge wait
while it resolves, and the clip's length while it transcodes (progress reports move the
status every second or so while a transcode runs, but a job queued behind others reports
nothing until it starts).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pipeline.jobs import FINAL_STATES
from schemas.events import State

MAX_REDRIVES = 3
# A media job may wait in a queue for the transcodes ahead of it: allow this many times the
# clip's own duration on top of the base timeout (H.265 here runs near real time).
MEDIA_DURATION_FACTOR = 4
SCAN_INTERVAL_S = 5.0


@dataclass(frozen=True)
class Verdict:
    job_id: str
    state: State
    action: Literal["redrive", "fail"]
    request: dict[str, Any] | None
    reason: str


def stage_timeout_ms(row: Mapping[str, Any], *, base_ms: int, live_wait_ms: int) -> int:
    """How long a job may sit in its current state without any report."""
    timeout = base_ms
    if row.get("state") in ("accepted", "resolving", "waiting_live"):
        timeout += live_wait_ms
    request = row.get("request") or {}
    if row.get("kind") == "media" and isinstance(request.get("duration_ms"), int):
        timeout += MEDIA_DURATION_FACTOR * request["duration_ms"]
    return timeout


def stalled_jobs(
    rows: Iterable[tuple[str, Mapping[str, Any]]],
    *,
    now_ms: int,
    base_ms: int,
    live_wait_ms: int,
) -> list[Verdict]:
    """What to do with each unfinished job whose status has not moved in time."""
    out = []
    for job_id, row in rows:
        if not isinstance(row, Mapping) or row.get("state") in FINAL_STATES:
            continue
        updated = row.get("updated_at_ms")
        if not isinstance(updated, int):
            continue
        timeout = stage_timeout_ms(row, base_ms=base_ms, live_wait_ms=live_wait_ms)
        idle = now_ms - updated
        if idle <= timeout:
            continue
        request = row.get("request")
        attempt = request.get("attempt", 0) if isinstance(request, dict) else MAX_REDRIVES
        reason = (
            f"stage {row.get('state')} made no progress for {idle} ms "
            f"(EXPORT_STAGE_TIMEOUT_MS allows {timeout} ms here)"
        )
        if isinstance(request, dict) and attempt < MAX_REDRIVES:
            redo = {**request, "attempt": attempt + 1}
            out.append(Verdict(job_id, row["state"], "redrive", redo, reason))
        else:
            reason += f" after {attempt} re-drives"
            out.append(Verdict(job_id, row["state"], "fail", request, reason))
    return out
