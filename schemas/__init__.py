"""Event contracts: topic names, faust Records, JSON Schema files, and the orjson wire codec.

``decode(topic, raw)`` is the one way a stage turns bytes into an event: orjson, then the
topic's JSON Schema, then the Record.  Anything that fails raises :class:`InvalidEvent`
with a reason naming the offending field, which the agent sends to ``export.deadletter``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from pipeline.errors import InvalidRequest
from schemas import codec
from schemas.events import (
    SCHEMA_VERSION,
    CompletedEvent,
    DeadLetter,
    RequestEvent,
    StageTask,
    StatusEvent,
    UploadTask,
)

REQUESTS = "export.requests"
FRAMES = "export.frames"
TRANSCODES = "export.transcodes"
UPLOADS = "export.uploads"
STATUS = "export.status"
COMPLETED = "export.completed"
DEADLETTER = "export.deadletter"

TOPICS: tuple[str, ...] = (REQUESTS, FRAMES, TRANSCODES, UPLOADS, STATUS, COMPLETED, DEADLETTER)

RECORDS: dict[str, type[Any]] = {
    REQUESTS: RequestEvent,
    FRAMES: StageTask,
    TRANSCODES: StageTask,
    UPLOADS: UploadTask,
    STATUS: StatusEvent,
    COMPLETED: CompletedEvent,
    DEADLETTER: DeadLetter,
}

_DIR = Path(__file__).resolve().parent
R = TypeVar("R")

__all__ = [
    "COMPLETED",
    "DEADLETTER",
    "FRAMES",
    "RECORDS",
    "REQUESTS",
    "SCHEMA_VERSION",
    "STATUS",
    "TOPICS",
    "TRANSCODES",
    "UPLOADS",
    "CompletedEvent",
    "DeadLetter",
    "InvalidEvent",
    "RequestEvent",
    "StageTask",
    "StatusEvent",
    "UploadTask",
    "decode",
    "encode",
    "schema_path",
    "validate",
]


class InvalidEvent(InvalidRequest):
    """An event's bytes are not JSON, or do not match the topic's schema."""


def schema_path(topic: str) -> Path:
    return _DIR / f"{topic}.schema.json"


@cache
def _validator(topic: str) -> Any:
    from jsonschema import Draft202012Validator

    schema = json.loads(schema_path(topic).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validate(topic: str, obj: Any) -> None:
    """Raise InvalidEvent naming the first offending field (by JSON path)."""
    errors = list(_validator(topic).iter_errors(obj))
    if not errors:
        return
    # A wrong field says more than a missing one; both name the field.
    err = min(errors, key=lambda e: (not e.absolute_path, [str(p) for p in e.absolute_path]))
    path = [str(p) for p in err.absolute_path]
    if err.validator == "required" and isinstance(err.instance, dict):
        missing = [p for p in err.validator_value if p not in err.instance]
        path += missing[:1]
    where = ".".join(path) or "(event)"
    raise InvalidEvent(f"{topic} event: {where}: {err.message}", field=where, obj=topic)


def decode(topic: str, raw: bytes | None) -> Any:
    """Bytes from ``topic`` to its Record; InvalidEvent when they are not a valid event."""
    if raw is None:
        raise InvalidEvent(f"{topic} event has no value", obj=topic)
    try:
        obj = codec.loads(raw)
    except ValueError as e:
        raise InvalidEvent(f"{topic} event is not JSON: {e}", obj=topic) from e
    validate(topic, obj)
    return RECORDS[topic].from_data(obj)


def encode(event: Any) -> bytes:
    """A Record (or a plain dict) to orjson bytes."""
    data = event.asdict() if hasattr(event, "asdict") else event
    return codec.dumps(data)
