"""storage_info (or the deprecated S3Bucket) → the archive's logical location.

The entry whose ``storage_purpose`` is LivePath's first element names the bucket, region
and root folder; the allow-list (settings.allowed_buckets) decides whether it may be read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pipeline.archive import check_source_allowed
from pipeline.errors import InvalidRequest
from pipeline.legacy.values import CONTROL, b64_json
from pipeline.settings import BUCKET_NAME, Settings
from schemas.request import REGION_PATTERN, ArchiveSource

_REGION = re.compile(REGION_PATTERN)


def decode_storage_info(value: object) -> list[dict[str, Any]]:
    """storage_info: base64 of a JSON list of storage entries (an already-decoded list too)."""
    decoded = value if isinstance(value, list) else b64_json(value, "storage_info")
    if isinstance(decoded, dict):
        decoded = [decoded]
    if not isinstance(decoded, list) or not all(isinstance(e, dict) for e in decoded):
        raise InvalidRequest(
            "storage_info must decode to a JSON list of storage entries", field="storage_info"
        )
    return decoded


def resolve_source(
    live_path: str,
    entries: list[dict[str, Any]] | None,
    settings: Settings,
    *,
    s3_bucket: object = None,
    s3_region: object = None,
) -> ArchiveSource:
    """The archive's logical location: the storage_info entry whose storage_purpose is
    LivePath's first element; else the deprecated S3Bucket when the allow-list names it;
    else the default archive (settings.archive_url, ``bucket`` None)."""
    if entries is not None:
        return _storage_info_source(live_path, entries, settings)
    allowed = settings.allowed_buckets
    if isinstance(s3_bucket, str) and s3_bucket and allowed is not None and s3_bucket in allowed:
        ok = isinstance(s3_region, str) and _REGION.match(s3_region)
        region = s3_region if ok else settings.s3_region
        return ArchiveSource(bucket=s3_bucket, region=region)  # type: ignore[arg-type]
    return ArchiveSource()


def _storage_info_source(
    live_path: str, entries: list[dict[str, Any]], settings: Settings
) -> ArchiveSource:
    purpose = live_path.split("/", 1)[0]
    entry = next((e for e in entries if e.get("storage_purpose") == purpose and _enabled(e)), None)
    if entry is None:
        raise InvalidRequest(
            f"storage_info has no enabled entry with storage_purpose {purpose!r} "
            "(LivePath's first element)",
            field="storage_info",
        )
    stype = entry.get("storage_type", "S3")
    if not isinstance(stype, str) or stype.upper() != "S3":
        raise InvalidRequest(
            f"storage_info entry {purpose!r}: storage_type {stype!r} is not supported (only S3)",
            field="storage_info",
        )
    bucket = entry.get("storage_name")
    if not isinstance(bucket, str) or not BUCKET_NAME.match(bucket):
        raise InvalidRequest(
            f"storage_info entry {purpose!r}: storage_name {bucket!r} is not a bucket name",
            field="storage_info",
        )
    region = entry.get("storage_location") or None
    if region is not None and (not isinstance(region, str) or not _REGION.match(region)):
        raise InvalidRequest(
            f"storage_info entry {purpose!r}: storage_location {region!r} is not a region",
            field="storage_info",
        )
    source = ArchiveSource(
        bucket=bucket, region=region, prefix=_root_folder(entry.get("storage_root_folder"), purpose)
    )
    check_source_allowed(source, settings, field="storage_info")
    return source


def _enabled(entry: Mapping[str, Any]) -> bool:
    flag = entry.get("storage_enable", True)
    return flag not in (False, 0, "false", "False", "0")


def _root_folder(value: object, purpose: str) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or "://" in value or "\\" in value or CONTROL.search(value):
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
