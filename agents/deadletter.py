"""Dead-lettering: an event no stage can use goes to export.deadletter with the reason and
its original bytes, and the stream moves on (a poison event never blocks a partition)."""

from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING, Any

from pipeline.errors import ExportError
from pipeline.stages.context import now_ms
from schemas import DEADLETTER, SCHEMA_VERSION

if TYPE_CHECKING:
    from agents.pipe import Pipeline

log = logging.getLogger(__name__)


def dead_letter_event(
    topic: str,
    raw: bytes | None,
    reason: str,
    *,
    key: bytes | None = None,
    partition: int | None = None,
    offset: int | None = None,
    error: ExportError | None = None,
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "topic": topic,
        "reason": reason,
        "original_b64": base64.b64encode(raw or b"").decode("ascii"),
        "at_ms": now_ms(),
        "partition": partition,
        "offset": offset,
        "key": key.decode("utf-8", "replace") if key is not None else None,
        "error": error.to_dict() if error is not None else None,
    }


async def dead_letter(pipe: Pipeline, event: Any, reason: str, error: ExportError | None) -> None:
    """Send a faust event's original bytes to export.deadletter."""
    msg = event.message
    log.warning("dead-letter %s[%s]@%s: %s", msg.topic, msg.partition, msg.offset, reason)
    body = dead_letter_event(
        msg.topic,
        event.value,
        reason,
        key=event.key,
        partition=msg.partition,
        offset=msg.offset,
        error=error,
    )
    await pipe.send(DEADLETTER, body["key"] or "", body)
    pipe.dead_lettered += 1
