"""Job identity: a JobId anyone can compute, in any language.

JobId = the first 32 hex digits, upper case, of SHA-256 over the RFC 8785 (JSON
Canonicalization Scheme) bytes of the object :func:`identity_document` builds: the fields
that define the output, and the archive's *logical* location (bucket and prefix, or the
service's default archive), never a local path, so every deployment gives the same body the
same JobId.  The README ("JobId") gives the recipe with a worked example, and
``tests/pipeline/job_id_vectors.json`` holds bodies with their JobIds.
"""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785

from pipeline.manifest.request import parse_start_time

ID_VERSION = 2


def identity_document(
    *,
    live_path: str,
    start_pos_ms: int | None,
    start_time: str | None,
    duration_ms: int,
    export_type: int,
    kind: str,
    file_name: str | None,
    story_id: str | None,
    bucket: str | None,
    prefix: str,
) -> dict[str, Any]:
    """The JSON object a JobId hashes.  StartTime counts by its value ("0:13:12" and
    "00:13:12" are the same job), as integer milliseconds."""
    start_s = parse_start_time(start_time)
    return {
        "v": ID_VERSION,
        "live_path": live_path,
        "start_pos_ms": start_pos_ms,
        "start_time_ms": round(start_s * 1000) if start_s is not None else None,
        "duration_ms": duration_ms,
        "export_type": export_type,
        "kind": kind,
        "file_name": file_name,
        "story_id": story_id,
        "archive": {"bucket": bucket, "prefix": prefix},
    }


def job_id_of(document: dict[str, Any]) -> str:
    return hashlib.sha256(rfc8785.dumps(document)).hexdigest()[:32].upper()
