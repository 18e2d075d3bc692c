"""The legacy ``POST /export`` body, validated into an :class:`ExportRequest`.

Everything a caller can get wrong is checked here, before anything reaches a topic: each
error is an :class:`~pipeline.errors.InvalidRequest` (or ``Unauthorized``) whose ``field`` is
the legacy field name.  The resulting request never carries the SessionId or any other
credential.  Job identity is a hash over the fields that define the output, so posting the
same body again is a poll of the same job.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from pipeline.auth import SessionCheck, session_check_for
from pipeline.errors import InvalidRequest, Unauthorized
from pipeline.jobs import Kind, output_keys
from pipeline.manifest.request import RangeRequest, parse_start_time, range_request
from pipeline.settings import BUCKET_NAME, Settings
from pipeline.storage import is_s3, split_s3

EXPORT_TYPES = (0, 1, 2)  # 0 stream copy (smart cut), 1 H.264, 2 H.265
MAX_LIVE_PATH = 1024
MAX_FILE_NAME = 255
MAX_TEXT = 256
MAX_B64 = 64 * 1024  # storage_info / slug_info: events stay small
_MAX_EPOCH_MS = 2**53  # JSON numbers above this are not exact anyway
_JOB_ID = re.compile(r"^[0-9A-F]{32}$")
_REGION = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class ArchiveSource:
    """Where a job's manifest lives."""

    manifest: str  # absolute: a filesystem path or s3://bucket/key
    bucket: str | None = None
    region: str | None = None
    via: Literal["storage_info", "S3Bucket", "default"] = "default"

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest": self.manifest,
            "bucket": self.bucket,
            "region": self.region,
            "via": self.via,
        }

    @classmethod
    def from_dict(cls, d: object) -> ArchiveSource:
        if not isinstance(d, dict):
            raise InvalidRequest("source must be an object", field="source")
        manifest = d.get("manifest")
        if not isinstance(manifest, str) or not manifest:
            raise InvalidRequest("source.manifest must be a non-empty string", field="source")
        via = d.get("via", "default")
        if via not in ("storage_info", "S3Bucket", "default"):
            raise InvalidRequest(f"source.via {via!r} is unknown", field="source")
        return cls(
            manifest=manifest,
            bucket=_opt_text(d, "bucket", "source.bucket"),
            region=_opt_text(d, "region", "source.region"),
            via=via,
        )


@dataclass(frozen=True)
class ExportRequest:
    """What travels on export.requests: validated, normalised, without credentials."""

    job_id: str  # 32 upper-case hex chars (hash of the output-defining fields)
    kind: Kind
    live_path: str
    start_pos_ms: int | None
    start_time: str | None
    duration_ms: int
    export_type: int  # 0 copy (smart cut), 1 H.264, 2 H.265
    file_name: str | None
    service_caller: str | None
    user_id: str | None
    peer_id: str | None
    story: dict[str, Any] | None  # {"id", "name"}; slug_info decoded into `slug`
    slug: dict[str, Any] | None
    source: ArchiveSource
    image_key: str  # "export/<job_id>/<name>.jpg"
    video_key: str | None  # "export/<job_id>/<name>.mp4" (or .ts); None for thumbnails
    submitted_at_ms: int

    def range(self) -> RangeRequest:
        return range_request(self.start_pos_ms, self.start_time, self.duration_ms)

    def to_dict(self) -> dict[str, Any]:
        d = {f: getattr(self, f) for f in self.__dataclass_fields__}
        d["source"] = self.source.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: object) -> ExportRequest:
        """Rebuild (and re-validate) a request from to_dict(); unknown keys are ignored."""
        if not isinstance(d, dict):
            raise InvalidRequest("an export request must be an object", field="request")
        job_id = d.get("job_id")
        if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
            raise InvalidRequest(
                f"job_id {job_id!r} is not 32 upper-case hex digits", field="job_id"
            )
        kind = d.get("kind")
        if kind not in ("thumbnail", "media"):
            raise InvalidRequest(f"kind {kind!r} is not thumbnail or media", field="kind")
        live_path = normalize_live_path(d.get("live_path"))
        start_pos = d.get("start_pos_ms")
        start_time = _opt_text(d, "start_time", "start_time")
        duration = d.get("duration_ms")
        for name, value in (("start_pos_ms", start_pos), ("duration_ms", duration)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidRequest(f"{name} must be an integer, got {value!r}", field=name)
        range_request(start_pos, start_time, duration)
        export_type = d.get("export_type")
        if isinstance(export_type, bool) or export_type not in EXPORT_TYPES:
            raise InvalidRequest(
                f"export_type {export_type!r} is not 0, 1 or 2", field="export_type"
            )
        image_key = d.get("image_key")
        if not isinstance(image_key, str) or not image_key:
            raise InvalidRequest("image_key must be a non-empty string", field="image_key")
        video_key = _opt_text(d, "video_key", "video_key")
        if kind == "media" and not video_key:
            raise InvalidRequest("a media request needs a video_key", field="video_key")
        submitted = d.get("submitted_at_ms")
        if isinstance(submitted, bool) or not isinstance(submitted, int):
            raise InvalidRequest("submitted_at_ms must be an integer", field="submitted_at_ms")
        story, slug = d.get("story"), d.get("slug")
        for name, value in (("story", story), ("slug", slug)):
            if value is not None and not isinstance(value, dict):
                raise InvalidRequest(f"{name} must be an object", field=name)
        return cls(
            job_id=job_id,
            kind=kind,
            live_path=live_path,
            start_pos_ms=start_pos,
            start_time=start_time,
            duration_ms=duration,  # type: ignore[arg-type]  # checked by range_request
            export_type=export_type,
            file_name=_opt_text(d, "file_name", "file_name"),
            service_caller=_opt_text(d, "service_caller", "service_caller"),
            user_id=_opt_text(d, "user_id", "user_id"),
            peer_id=_opt_text(d, "peer_id", "peer_id"),
            story=story,
            slug=slug,
            source=ArchiveSource.from_dict(d.get("source")),
            image_key=image_key,
            video_key=video_key,
            submitted_at_ms=submitted,
        )


def parse_export_body(
    body: Mapping[str, Any],
    settings: Settings,
    *,
    now_ms: int,
    sessions: SessionCheck | None = None,
) -> ExportRequest:
    """Validate a legacy /export body (already JSON-decoded) into an ExportRequest.

    Checks the SessionId first (``sessions`` defaults to the check the settings choose),
    then every field; decodes storage_info and story.slug_info; resolves LivePath to the
    archive it names.  Fields the contract marks deprecated or informational
    (S3Bucket/S3Region unless allowed, FetchThumb, _ServiceName, _UrlPath, _Version) never
    change the job.
    """
    if not isinstance(body, Mapping):
        raise InvalidRequest(
            f"the body must be a JSON object, not {_json_type(body)}", field="body"
        )
    (sessions or session_check_for(settings)).check(body.get("SessionId"))

    start_pos = _opt_number(body, "StartPos")
    start_time = _opt_text(body, "StartTime", "StartTime", max_len=32)
    duration = _opt_number(body, "Duration")
    if start_pos is not None and start_pos >= _MAX_EPOCH_MS:
        raise InvalidRequest(f"StartPos {start_pos} is not a time in ms", field="StartPos")
    rng = range_request(start_pos, start_time, duration)

    live_path = normalize_live_path(body.get("LivePath"))
    fetch_media = _opt_bool(body, "FetchMedia", default=False)
    _opt_bool(body, "FetchThumb", default=False)  # the first frame either way: type only
    kind: Kind = "media" if fetch_media else "thumbnail"
    export_type = _export_type(body.get("export_type"))
    file_name = _opt_text(body, "FileName", "FileName", max_len=MAX_FILE_NAME)
    if file_name == "":
        file_name = None
    service_caller = _opt_text(body, "ServiceCaller", "ServiceCaller")
    user_id = _opt_text(body, "userid", "userid")
    peer_id = _opt_text(body, "PeerId", "PeerId")
    s3_bucket = _opt_text(body, "S3Bucket", "S3Bucket")
    s3_region = _opt_text(body, "S3Region", "S3Region")
    story, slug = _story(body.get("story"))

    raw_storage = body.get("storage_info")
    entries = None if raw_storage in (None, "") else decode_storage_info(raw_storage)
    source = resolve_source(live_path, entries, settings, s3_bucket=s3_bucket, s3_region=s3_region)

    job_id = job_id_for(
        live_path=live_path,
        start_pos_ms=rng.start_pos_ms,
        start_time=start_time,
        duration_ms=rng.duration_ms,
        export_type=export_type,
        kind=kind,
        file_name=file_name,
        story_id=(story or {}).get("id"),
        source_manifest=source.manifest,
    )
    image_key, video_key = output_keys(job_id, kind, file_name)
    return ExportRequest(
        job_id=job_id,
        kind=kind,
        live_path=live_path,
        start_pos_ms=rng.start_pos_ms,
        start_time=start_time.strip() if start_time else None,
        duration_ms=rng.duration_ms,
        export_type=export_type,
        file_name=file_name,
        service_caller=service_caller,
        user_id=user_id,
        peer_id=peer_id,
        story=story,
        slug=slug,
        source=source,
        image_key=image_key,
        video_key=video_key,
        submitted_at_ms=now_ms,
    )


def job_id_for(
    *,
    live_path: str,
    start_pos_ms: int | None,
    start_time: str | None,
    duration_ms: int,
    export_type: int,
    kind: Kind,
    file_name: str | None,
    story_id: str | None,
    source_manifest: str,
) -> str:
    """32 upper-case hex digits of sha256 over the output-defining fields, canonically dumped.

    StartTime counts by its value ("0:13:12" and "00:13:12" are the same job); the SessionId,
    userid, PeerId, FetchThumb and the _-prefixed envelope fields are not part of it.
    """
    start_s = parse_start_time(start_time)
    canonical = {
        "v": 1,
        "live_path": live_path,
        "start_pos_ms": start_pos_ms,
        "start_time_ms": round(start_s * 1000) if start_s is not None else None,
        "duration_ms": duration_ms,
        "export_type": export_type,
        "kind": kind,
        "file_name": file_name,
        "story_id": story_id,
        "source": source_manifest,
    }
    digest = hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return digest[:32].upper()


def normalize_live_path(value: object) -> str:
    """LivePath as a clean relative path: no scheme, no absolute root, no '..' (traversal)."""
    if value is None or value == "":
        raise InvalidRequest("LivePath is required", field="LivePath")
    if not isinstance(value, str):
        raise InvalidRequest(
            f"LivePath must be a string, not {_json_type(value)}", field="LivePath"
        )
    if len(value) > MAX_LIVE_PATH:
        raise InvalidRequest(
            f"LivePath is longer than {MAX_LIVE_PATH} characters", field="LivePath"
        )
    if _CONTROL.search(value) or "\\" in value:
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


def decode_storage_info(value: object) -> list[dict[str, Any]]:
    """storage_info: base64 of a JSON list of storage entries (an already-decoded list too)."""
    decoded = value if isinstance(value, list) else _b64_json(value, "storage_info")
    if isinstance(decoded, dict):
        decoded = [decoded]
    if not isinstance(decoded, list) or not all(isinstance(e, dict) for e in decoded):
        raise InvalidRequest(
            "storage_info must decode to a JSON list of storage entries", field="storage_info"
        )
    return decoded


def decode_slug_info(value: object) -> dict[str, Any]:
    """story.slug_info: base64 of a JSON object (an already-decoded object too)."""
    decoded = value if isinstance(value, dict) else _b64_json(value, "story.slug_info")
    if not isinstance(decoded, dict):
        raise InvalidRequest(
            "story.slug_info must decode to a JSON object", field="story.slug_info"
        )
    return decoded


def resolve_source(
    live_path: str,
    entries: list[dict[str, Any]] | None,
    settings: Settings,
    *,
    s3_bucket: str | None = None,
    s3_region: str | None = None,
) -> ArchiveSource:
    """The manifest's location: the storage_info entry whose storage_purpose is LivePath's
    first element; else the deprecated S3Bucket when the allow-list names it; else the
    default archive (settings.archive_url)."""
    allowed = settings.allowed_buckets
    if entries is not None:
        purpose = live_path.split("/", 1)[0]
        entry = next(
            (e for e in entries if e.get("storage_purpose") == purpose and _enabled(e)), None
        )
        if entry is None:
            raise InvalidRequest(
                f"storage_info has no enabled entry with storage_purpose {purpose!r} "
                "(LivePath's first element)",
                field="storage_info",
            )
        stype = entry.get("storage_type", "S3")
        if not isinstance(stype, str) or stype.upper() != "S3":
            raise InvalidRequest(
                f"storage_info entry {purpose!r}: storage_type {stype!r} is not supported "
                "(only S3)",
                field="storage_info",
            )
        bucket = entry.get("storage_name")
        if not isinstance(bucket, str) or not BUCKET_NAME.match(bucket):
            raise InvalidRequest(
                f"storage_info entry {purpose!r}: storage_name {bucket!r} is not a bucket name",
                field="storage_info",
            )
        if allowed is not None and bucket not in allowed:
            raise Unauthorized(
                f"bucket {bucket!r} (storage_info) is not in EXPORT_ALLOWED_BUCKETS",
                field="storage_info",
            )
        region = entry.get("storage_location") or None
        if region is not None and (not isinstance(region, str) or not _REGION.match(region)):
            raise InvalidRequest(
                f"storage_info entry {purpose!r}: storage_location {region!r} is not a region",
                field="storage_info",
            )
        root = _root_folder(entry.get("storage_root_folder"), purpose)
        key = f"{root}/{live_path}" if root else live_path
        return ArchiveSource(f"s3://{bucket}/{key}", bucket, region, "storage_info")
    if s3_bucket and allowed is not None and s3_bucket in allowed:
        region = s3_region if s3_region and _REGION.match(s3_region) else settings.s3_region
        return ArchiveSource(f"s3://{s3_bucket}/{live_path}", s3_bucket, region, "S3Bucket")
    base = settings.archive_url
    if is_s3(base):
        bucket, _ = split_s3(base)
        return ArchiveSource(f"{base.rstrip('/')}/{live_path}", bucket, settings.s3_region)
    return ArchiveSource(os.path.join(os.path.abspath(base), *live_path.split("/")))


# --- field helpers -----------------------------------------------------------------------


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _opt_text(d: Mapping[str, Any], key: str, name: str, *, max_len: int = MAX_TEXT) -> str | None:
    value = d.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string, not {_json_type(value)}", field=name)
    if len(value) > max_len:
        raise InvalidRequest(f"{name} is longer than {max_len} characters", field=name)
    if _CONTROL.search(value):
        raise InvalidRequest(f"{name} must not contain control characters", field=name)
    return value


def _opt_number(d: Mapping[str, Any], name: str) -> int | float | None:
    value = d.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(
            f"{name} must be a number (ms), not {_json_type(value)} {value!r}", field=name
        )
    if not math.isfinite(value):
        raise InvalidRequest(f"{name} must be a finite number", field=name)
    return value


def _opt_bool(d: Mapping[str, Any], name: str, *, default: bool) -> bool:
    value = d.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidRequest(
            f"{name} must be true or false, not {_json_type(value)} {value!r}", field=name
        )
    return value


def _export_type(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(
            f"export_type must be the number 0, 1 or 2, not {_json_type(value)} {value!r}",
            field="export_type",
        )
    if value not in EXPORT_TYPES:
        raise InvalidRequest(
            f"export_type {value!r} is not 0 (copy), 1 (H.264) or 2 (H.265)", field="export_type"
        )
    return int(value)


def _story(value: object) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    if value is None:
        return None, None
    if not isinstance(value, Mapping):
        raise InvalidRequest(f"story must be an object, not {_json_type(value)}", field="story")
    story: dict[str, Any] = {}
    for key in ("id", "name"):
        text = _opt_text(value, key, f"story.{key}")
        if text is not None:
            story[key] = text
    raw_slug = value.get("slug_info")
    slug = None if raw_slug in (None, "") else decode_slug_info(raw_slug)
    return (story or None), slug


def _b64_json(value: object, name: str) -> Any:
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a base64 string, not {_json_type(value)}", field=name)
    if len(value) > MAX_B64:
        raise InvalidRequest(f"{name} is larger than {MAX_B64} characters", field=name)
    text = "".join(value.split())  # encoders that wrap lines
    text += "=" * (-len(text) % 4)
    try:
        altchars = b"-_" if ("-" in text or "_" in text) else None
        raw = base64.b64decode(text, altchars=altchars, validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as e:
        raise InvalidRequest(f"{name} is not valid base64", field=name) from e
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise InvalidRequest(f"{name} is not base64 of JSON: {e}", field=name) from e


def _enabled(entry: Mapping[str, Any]) -> bool:
    flag = entry.get("storage_enable", True)
    return flag not in (False, 0, "false", "False", "0")


def _root_folder(value: object, purpose: str) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or "://" in value or "\\" in value or _CONTROL.search(value):
        raise InvalidRequest(
            f"storage_info entry {purpose!r}: storage_root_folder {value!r} is not a folder",
            field="storage_info",
        )
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidRequest(
            f"storage_info entry {purpose!r}: storage_root_folder must not contain '..'",
            field="storage_info",
        )
    return "/".join(parts)
