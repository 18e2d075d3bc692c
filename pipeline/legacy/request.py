"""The legacy ``POST /export`` body, turned into an :class:`ExportRequest`.

This module only translates: the body's definition (body.py, which the OpenAPI document
is generated from) gives each field's type and range, then legacy names become event
fields, ``FetchMedia`` a kind, base64 ``slug_info`` JSON and ``storage_info`` the archive's
logical location (storage.py).  The request's own definition (schemas/request.py) is then
applied by :func:`schemas.convert` exactly as to an event published straight onto
export.requests; an error is reported under the legacy field name (``Duration``, not
``duration_ms``): a bad Duration becomes an InvalidRequest named ``Duration`` (body.py or
here), which the answer (response.py) writes as ErrorCode -2.  The resulting request
never carries the SessionId or any other credential.  Posting the same body again is a
poll of the same job: the JobId is a hash of the output-defining fields
(pipeline/identity.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.auth import SessionCheck, session_check_for
from pipeline.errors import ExportError, InvalidRequest
from pipeline.identity import identity_document, job_id_of
from pipeline.jobs import Kind
from pipeline.legacy.body import StoryBody, human, read_body
from pipeline.legacy.paths import output_keys
from pipeline.legacy.storage import decode_storage_info, resolve_source
from pipeline.legacy.values import CONTROL, b64_json, json_type
from pipeline.settings import Settings
from schemas.request import MAX_LIVE_PATH, ExportRequest

# event field -> the legacy body field a caller wrote (errors name what the caller sent)
LEGACY_FIELDS = {
    "duration_ms": "Duration",
    "start_pos_ms": "StartPos",
    "start_time": "StartTime",
    "live_path": "LivePath",
    "export_type": "export_type",
    "file_name": "FileName",
    "service_caller": "ServiceCaller",
    "user_id": "userid",
    "peer_id": "PeerId",
    "story": "story",
    "story.id": "story.id",
    "story.name": "story.name",
    "slug": "story.slug_info",
    "kind": "FetchMedia",
}

__all__ = [
    "LEGACY_FIELDS",
    "decode_slug_info",
    "normalize_live_path",
    "parse_export_body",
    "request_from_fields",
]


def parse_export_body(
    body: Mapping[str, Any],
    settings: Settings,
    *,
    now_ms: int,
    sessions: SessionCheck | None = None,
) -> ExportRequest:
    """Validate a legacy /export body (already JSON-decoded) into an ExportRequest.

    Checks the SessionId first (``sessions`` defaults to the check the settings choose),
    then every field's type and range (the body's definition, body.py); decodes
    storage_info and story.slug_info; resolves LivePath to the archive it names.  Fields
    the contract marks deprecated or informational (S3Bucket/S3Region unless allowed,
    FetchThumb, _ServiceName, _UrlPath, _Version) never change the job.
    """
    if not isinstance(body, Mapping):
        raise InvalidRequest(f"the body must be a JSON object, not {json_type(body)}", field="body")
    (sessions or session_check_for(settings)).check(body.get("SessionId"))
    sent = read_body(body)
    live_path = normalize_live_path(sent.LivePath)
    story, slug = _story(sent.story)
    raw_storage = sent.storage_info
    entries = None if raw_storage in (None, "") else decode_storage_info(raw_storage)
    source = resolve_source(
        live_path, entries, settings, s3_bucket=sent.S3Bucket, s3_region=sent.S3Region
    )
    # FetchThumb changes nothing: the thumbnail is the first frame either way.
    kind: Kind = "media" if sent.FetchMedia else "thumbnail"
    fields: dict[str, Any] = {
        "kind": kind,
        "live_path": live_path,
        "start_pos_ms": sent.StartPos,
        "start_time": sent.StartTime.strip() if sent.StartTime else None,
        "duration_ms": sent.Duration,
        "export_type": sent.export_type or 0,
        "file_name": sent.FileName or None,
        "service_caller": sent.ServiceCaller,
        "user_id": sent.userid,
        "peer_id": sent.PeerId,
        "story": story,
        "slug": slug,
        "source": source,
        "submitted_at_ms": now_ms,
    }
    return request_from_fields(fields)


def request_from_fields(fields: dict[str, Any]) -> ExportRequest:
    """Complete ``fields`` with the JobId and output keys and apply the request's rules,
    naming a bad field as the legacy body calls it."""
    from schemas import REQUESTS, convert

    job_id = _job_id(fields)
    image_key, video_key = output_keys(job_id, fields["kind"], fields["file_name"])
    fields = {**fields, "job_id": job_id, "image_key": image_key, "video_key": video_key}
    try:
        req: ExportRequest = convert(REQUESTS, fields)
    except ExportError as e:
        raise _as_legacy(e, fields) from e
    return req


def _job_id(fields: dict[str, Any]) -> str:
    """The JobId of request ``fields`` (event names; ``source`` an ArchiveSource), or a
    placeholder when a value of the wrong type cannot be canonicalised."""
    try:
        doc = identity_document(
            live_path=fields["live_path"],
            start_pos_ms=fields["start_pos_ms"],
            start_time=fields["start_time"],
            duration_ms=fields["duration_ms"],
            export_type=fields["export_type"],
            kind=fields["kind"],
            file_name=fields["file_name"],
            story_id=(fields["story"] or {}).get("id"),
            bucket=fields["source"].bucket,
            prefix=fields["source"].prefix,
        )
        return job_id_of(doc)
    except (TypeError, ValueError):
        # A value of the wrong type cannot be canonicalised; convert() names it next.
        return "0" * 32


def _as_legacy(e: ExportError, fields: Mapping[str, Any]) -> ExportError:
    """The same error under the legacy field name, with the value the caller sent."""
    path = e.field or ""
    head = path.split("[", 1)[0]
    legacy = LEGACY_FIELDS.get(path) or LEGACY_FIELDS.get(head.split(".", 1)[0])
    if path.startswith("source"):
        legacy = "storage_info"
    if legacy is None:
        return e
    detail = e.message.split(": ", 2)[-1] if e.message.startswith("export.requests") else e.message
    value = fields.get(head.split(".", 1)[0])
    shown = "" if isinstance(value, dict | list) or value is None else f" {value!r}"
    message = detail if detail.startswith(legacy) else f"{legacy}{shown[:80]}: {human(detail)}"
    return type(e)(message, field=legacy, obj=None)


def normalize_live_path(value: object) -> str:
    """LivePath as a clean relative path: no scheme, no absolute root, no '..' (traversal)."""
    if value is None or value == "":
        raise InvalidRequest("LivePath is required", field="LivePath")
    if not isinstance(value, str):
        raise InvalidRequest(f"LivePath must be a string, not {json_type(value)}", field="LivePath")
    if len(value) > MAX_LIVE_PATH:
        raise InvalidRequest(
            f"LivePath is longer than {MAX_LIVE_PATH} characters", field="LivePath"
        )
    if CONTROL.search(value) or "\\" in value:
        raise InvalidRequest(
            "LivePath must not contain control characters or backslashes", field="LivePath"
        )
    if "://" in value or value.startswith(("/", "~")):
        raise InvalidRequest(f"LivePath {value!r} must be a relative path", field="LivePath")
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidRequest(f"LivePath {value!r} must not contain '..'", field="LivePath")
    if not parts:
        raise InvalidRequest(f"LivePath {value!r} names no file", field="LivePath")
    if ":" in parts[0]:
        raise InvalidRequest(
            f"LivePath {value!r} must be a relative path (no drive or scheme)", field="LivePath"
        )
    return "/".join(parts)


def decode_slug_info(value: object) -> dict[str, Any]:
    """story.slug_info: base64 of a JSON object (an already-decoded object too)."""
    decoded = value if isinstance(value, dict) else b64_json(value, "story.slug_info")
    if not isinstance(decoded, dict):
        raise InvalidRequest(
            "story.slug_info must decode to a JSON object", field="story.slug_info"
        )
    return decoded


def _story(story: StoryBody | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The story as the request carries it (id and name) and its decoded slug_info."""
    if story is None:
        return None, None
    fields = {
        key: text for key, text in (("id", story.id), ("name", story.name)) if text is not None
    }
    slug = None if story.slug_info in (None, "") else decode_slug_info(story.slug_info)
    return (fields or None), slug
