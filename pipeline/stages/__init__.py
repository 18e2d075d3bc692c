"""What each agent does with one event, as plain async functions (no faust imports).

An agent decodes an event, calls one function here and sends what it returns.  CPU work
(frame grabs, transcodes) runs in a thread pool behind per-worker semaphores
(``max_frame_grabs``, ``max_transcodes``), so the event loop keeps heartbeating while a
transcode runs for minutes.  Artifacts move through the output store: the frame and
transcode stages write ``staging/<job_id>/...``; the upload stage copies them to the job's
deterministic final keys and removes staging.  Events carry keys, never media bytes.

- context.py  StageContext: storage, scratch space, CPU slots of one worker
- events.py   building the events the stages exchange (schemas' typed definitions)
- resolve.py  the resolve stage with the bounded live-edge wait
- media.py    the frame and transcode stages
- upload.py   the upload stage and the export.completed event
"""

from __future__ import annotations

from pipeline.stages.context import Clock, Publish, StageContext, now_ms
from pipeline.stages.events import lack_ms, status_event, upload_task
from pipeline.stages.media import frame_step, staging_key, transcode_step
from pipeline.stages.resolve import (
    LIVE_POLL_S,
    Routed,
    needs_live_wait,
    resolve_once,
    resolve_step,
    start_unrecorded,
)
from pipeline.stages.upload import Published, discard_staging, output_metadata, upload_step

__all__ = [
    "LIVE_POLL_S",
    "Clock",
    "Publish",
    "Published",
    "Routed",
    "StageContext",
    "discard_staging",
    "frame_step",
    "lack_ms",
    "needs_live_wait",
    "now_ms",
    "output_metadata",
    "resolve_once",
    "resolve_step",
    "staging_key",
    "start_unrecorded",
    "status_event",
    "transcode_step",
    "upload_step",
    "upload_task",
]
