"""The events on every topic, as faust Records (orjson on the wire, keyed by ``job_id``).

Events carry references (output-store keys), never media bytes.  Each topic also has a JSON
Schema file beside this module (``<topic>.schema.json``) for producers and consumers outside
Python; :func:`schemas.decode` validates against it before building the Record.
"""

from __future__ import annotations

from typing import Any

import faust

SCHEMA_VERSION = 1


class _Event(faust.Record, abstract=True, include_metadata=False, serializer="orjson"):
    pass


class RequestEvent(_Event):
    """``export.requests``: mirrors pipeline.jobs.ExportRequest (no SessionId, no secrets)."""

    schema_version: int
    job_id: str
    kind: str  # "thumbnail" | "media"
    live_path: str
    duration_ms: int
    source: dict[str, Any]  # ArchiveSource: {"manifest", "bucket", "region"}
    image_key: str
    start_pos_ms: int | None = None
    start_time: str | None = None
    export_type: int = 0
    file_name: str | None = None
    service_caller: str | None = None
    user_id: str | None = None
    peer_id: str | None = None
    story: dict[str, Any] | None = None
    slug: dict[str, Any] | None = None
    video_key: str | None = None
    submitted_at_ms: int = 0


class StageTask(_Event):
    """``export.frames`` / ``export.transcodes``: the request plus what resolve decided.

    The stage re-resolves the manifest itself (milliseconds), so the event stays small.
    """

    schema_version: int
    job_id: str
    request: dict[str, Any]  # RequestEvent fields
    lack_length_ms: int = 0  # what was still missing beyond the live edge when resolve gave up
    live_waited_ms: int = 0
    timings: dict[str, dict[str, int]] = {}  # noqa: RUF012 (faust copies field defaults)


class Artifact(_Event):
    """One file a stage left in the output store under ``staging/<job_id>/``."""

    role: str  # "image" | "video"
    staging_key: str
    final_key: str
    content_type: str
    size: int
    sha256: str
    facts: dict[str, Any] = {}  # noqa: RUF012 (ThumbnailResult/ClipResult fields, JSON-ready)


class UploadTask(_Event):
    """``export.uploads``: finished (or failed) stage work waiting to be published."""

    schema_version: int
    job_id: str
    request: dict[str, Any]
    artifacts: list[dict[str, Any]] = []  # noqa: RUF012 (Artifact dicts)
    delivered_ms: int = 0
    missing_ms: int = 0
    lack_length_ms: int = 0
    gaps: list[dict[str, Any]] = []  # noqa: RUF012
    timings: dict[str, dict[str, int]] = {}  # noqa: RUF012
    error: dict[str, Any] | None = None  # ExportError.to_dict() when the job failed


class StatusEvent(_Event):
    """``export.status``: one progress report; the status table folds these per job."""

    schema_version: int
    job_id: str
    state: str
    at_ms: int
    kind: str | None = None
    stage: str | None = None
    progress: float | None = None
    stage_start_ms: int | None = None
    stage_end_ms: int | None = None
    lack_length_ms: int | None = None
    image_key: str | None = None
    video_key: str | None = None
    error: dict[str, Any] | None = None


class CompletedEvent(_Event):
    """``export.completed``: exactly one per job, also when the job failed (for analysts)."""

    schema_version: int
    job_id: str
    outcome: str  # "ok" | "failed"
    request: dict[str, Any]
    completed_at_ms: int
    outputs: dict[str, Any] = {}  # noqa: RUF012 ("image"/"video" -> key, location, size, sha256, facts)
    delivered_ms: int = 0
    missing_ms: int = 0
    lack_length_ms: int = 0
    gaps: list[dict[str, Any]] = []  # noqa: RUF012
    timings: dict[str, dict[str, int]] = {}  # noqa: RUF012
    error: dict[str, Any] | None = None
    story: dict[str, Any] | None = None
    slug: dict[str, Any] | None = None


class DeadLetter(_Event):
    """``export.deadletter``: an event no stage could use, with the reason and its bytes."""

    schema_version: int
    topic: str
    reason: str
    original_b64: str  # the original value bytes, base64
    at_ms: int
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    error: dict[str, Any] | None = None
