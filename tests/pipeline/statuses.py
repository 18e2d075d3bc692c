"""A media job's status updates, in order, and how the status tests fold them."""

from __future__ import annotations

from typing import Any

from pipeline.jobs import JobStatus, advance
from pipeline.stages.events import status_event
from schemas import StatusEvent

JOB = "0123456789ABCDEF0123456789ABCDEF"
T0 = 1_700_000_000_000


def upd(state: str, at: int, **kw: Any) -> StatusEvent:
    return status_event(JOB, state, at_ms=T0 + at, **kw)  # type: ignore[arg-type]


def run(*updates: StatusEvent) -> JobStatus:
    status: JobStatus | None = None
    for u in updates:
        status = advance(status, u)
    assert status is not None
    return status


MEDIA_FLOW = [
    upd("accepted", 0, kind="media", progress=0.0, image_key=f"export/{JOB}/c.jpg",
        video_key=f"export/{JOB}/c.mp4"),
    upd("resolving", 10),
    upd("resolving", 20, progress=1.0, lack_length_ms=0),
    upd("transcoding", 30, progress=0.0),
    upd("transcoding", 1030, progress=0.25),
    upd("transcoding", 2030, progress=0.5),
    upd("grabbing", 2040, stage="grab", stage_start_ms=T0 + 2040, stage_end_ms=T0 + 2300),
    upd("transcoding", 4030, progress=1.0),
    upd("uploading", 4040, progress=0.0),
    upd("uploading", 4100, progress=1.0),
    upd("done", 4200, lack_length_ms=0),
]  # fmt: skip
