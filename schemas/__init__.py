"""Event contracts: topic names, one msgspec definition per message, generated JSON Schemas.

``decode(topic, raw)`` is the one way a stage turns bytes into an event and
``convert(topic, obj)`` the one way a Python object (a legacy body turned into fields, an
event a stage built) becomes one: both apply the same definition, so what the ingress
accepts and what a topic accepts are the same rules.  Anything that fails raises
:class:`InvalidEvent` naming the offending field by its path (``request.duration_ms``),
which the agent sends to ``export.deadletter``, ending the job when its job_id is known.
Importing this package loads neither faust nor aiokafka.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

import msgspec

from pipeline.errors import ExportError, InvalidRequest
from schemas.events import (
    Artifact,
    Chunk,
    CompletedEvent,
    DeadLetter,
    ErrorInfo,
    Output,
    StageTask,
    StatusEvent,
    UploadTask,
)
from schemas.request import JOB_ID_PATTERN, SCHEMA_VERSION, ArchiveSource, ExportRequest, Story

REQUESTS = "export.requests"
FRAMES = "export.frames"
TRANSCODES = "export.transcodes"
UPLOADS = "export.uploads"
STATUS = "export.status"
COMPLETED = "export.completed"
DEADLETTER = "export.deadletter"

TOPICS: tuple[str, ...] = (REQUESTS, FRAMES, TRANSCODES, UPLOADS, STATUS, COMPLETED, DEADLETTER)

TYPES: dict[str, type[msgspec.Struct]] = {
    REQUESTS: ExportRequest,
    FRAMES: StageTask,
    TRANSCODES: StageTask,
    UPLOADS: UploadTask,
    STATUS: StatusEvent,
    COMPLETED: CompletedEvent,
    DEADLETTER: DeadLetter,
}

_DIR = Path(__file__).resolve().parent
_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`")
_JOB_ID = re.compile(JOB_ID_PATTERN)
_ENCODER = msgspec.json.Encoder()

__all__ = [
    "COMPLETED",
    "DEADLETTER",
    "FRAMES",
    "REQUESTS",
    "SCHEMA_VERSION",
    "STATUS",
    "TOPICS",
    "TRANSCODES",
    "TYPES",
    "UPLOADS",
    "ArchiveSource",
    "Artifact",
    "Chunk",
    "CompletedEvent",
    "DeadLetter",
    "ErrorInfo",
    "ExportRequest",
    "InvalidEvent",
    "Output",
    "StageTask",
    "StatusEvent",
    "Story",
    "UploadTask",
    "convert",
    "decode",
    "encode",
    "job_id_hint",
    "schema_path",
]


class InvalidEvent(InvalidRequest):
    """An event's bytes are not JSON, or do not match the topic's definition."""


def schema_path(topic: str) -> Path:
    return _DIR / f"{topic}.schema.json"


def decode(topic: str, raw: bytes | None) -> Any:
    """Bytes from ``topic`` to its Struct; InvalidEvent when they are not a valid event."""
    if raw is None:
        raise InvalidEvent(f"{topic} event has no value", obj=topic)
    try:
        return msgspec.json.decode(raw, type=TYPES[topic])
    except msgspec.ValidationError as e:
        raise _invalid(topic, e) from e
    except msgspec.DecodeError as e:
        raise InvalidEvent(f"{topic} event is not JSON: {e}", obj=topic) from e
    except RecursionError as e:
        raise InvalidEvent(f"{topic} event is nested too deeply", obj=topic) from e
    except ExportError as e:  # a rule across fields (__post_init__)
        raise _invalid_rule(topic, e) from e


def convert(topic: str, obj: Any) -> Any:
    """A dict (or Struct) to ``topic``'s Struct, by the same rules as :func:`decode`.

    A Struct built in code is checked again too: msgspec checks constraints (``ge=0``, a
    pattern) when it decodes, not when a Struct is constructed."""
    target = TYPES[topic]
    if isinstance(obj, msgspec.Struct):
        obj = msgspec.to_builtins(obj)
    try:
        return msgspec.convert(obj, target)
    except msgspec.ValidationError as e:
        raise _invalid(topic, e) from e
    except RecursionError as e:
        raise InvalidEvent(f"{topic} event is nested too deeply", obj=topic) from e
    except ExportError as e:
        raise _invalid_rule(topic, e) from e


def encode(topic: str, event: Any) -> bytes:
    """An event (Struct or dict) to JSON bytes, validated against ``topic`` first: a stage
    that builds a bad event fails there, naming the field, instead of poisoning the topic."""
    return _ENCODER.encode(convert(topic, event))


def job_id_hint(raw: bytes | None, key: bytes | None = None) -> str | None:
    """The job an unreadable event belongs to, when that much can be read: the event's own
    ``job_id``, else its key (a chunk task's ``<job_id>/<n>`` too).  Used to end the job of
    a refused event, and by the heartbeat to know whose event a worker holds."""
    candidates: list[object] = []
    with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        candidates.append(msgspec.json.decode(raw or b"", type=dict[str, Any]).get("job_id"))
    if key is not None:
        candidates.append(key.decode("utf-8", "replace").split("/", 1)[0])
    return next((c for c in candidates if isinstance(c, str) and _JOB_ID.match(c)), None)


def _invalid(topic: str, e: msgspec.ValidationError) -> InvalidEvent:
    text = str(e)
    m = _PATH.search(text)
    where = m.group("path").replace("`", "") if m else ""
    message = text[: m.start()] if m else text
    missing = _MISSING.match(message)
    if missing:  # msgspec names the object that lacks it; the field is the missing one
        where = f"{where}.{missing['name']}" if where else missing["name"]
    return InvalidEvent(
        f"{topic} event: {where or '(event)'}: {message}", field=where or None, obj=topic
    )


def _invalid_rule(topic: str, e: ExportError) -> InvalidEvent:
    return InvalidEvent(f"{topic} event: {e.message}", field=e.field, obj=topic)
