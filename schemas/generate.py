"""Write the JSON Schema file of every topic from its msgspec definition.

    python -m schemas.generate          # rewrite schemas/*.schema.json
    python -m schemas.generate --check  # exit 1 when a checked-in file is stale

The rules that span fields (checked in ``__post_init__``) are stated too: the ones JSON
Schema can express as conditions, and the rest in ``description`` (the JobId and the output
keys are recomputed from the request; see the README, "JobId").
"""

from __future__ import annotations

import json
import sys
from typing import Any

import msgspec

from schemas import TOPICS, TYPES, schema_path

REQUEST_RULES: dict[str, Any] = {
    "anyOf": [
        {"required": ["start_pos_ms"], "properties": {"start_pos_ms": {"type": "integer"}}},
        {"required": ["start_time"], "properties": {"start_time": {"type": "string"}}},
    ],
    "if": {"properties": {"kind": {"const": "media"}}},
    "then": {"required": ["video_key"], "properties": {"video_key": {"type": "string"}}},
    "else": {"properties": {"video_key": {"type": "null"}}},
    "description": (
        "job_id must be the JobId of the request (SHA-256 of its RFC 8785 identity document, "
        "README 'JobId'); image_key and video_key must be the job's deterministic output "
        "keys (export/<job_id>/<FileName or job_id>.jpg/.mp4/.ts); live_path and "
        "source.prefix are clean relative paths; slug is bounded in depth and size."
    ),
}


def topic_schema(topic: str) -> dict[str, Any]:
    schema: dict[str, Any] = msgspec.json.schema(TYPES[topic])
    defs = schema.get("$defs", {})
    if "ExportRequest" in defs:
        defs["ExportRequest"].update(REQUEST_RULES)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": topic,
        **schema,
    }


def render(topic: str) -> str:
    return json.dumps(topic_schema(topic), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    check = "--check" in (argv if argv is not None else sys.argv[1:])
    stale = []
    for topic in TOPICS:
        path = schema_path(topic)
        text = render(topic)
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path.name)
        if not check:
            path.write_text(text)
    if stale:
        verb = "stale" if check else "written"
        print(f"{verb}: {', '.join(stale)}", file=sys.stderr)
    return 1 if check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
