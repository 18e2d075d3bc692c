"""A broker-less stand-in for pipeline.app.Pipeline: sends are recorded, tables are dicts."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import schemas


@dataclass
class Message:
    topic: str
    partition: int = 0
    offset: int = 0


@dataclass
class Event:
    """What ``stream.events()`` yields: raw key/value bytes and the message position."""

    key: bytes | None
    value: bytes | None
    message: Message


def event(topic: str, value: Any, key: str | None = None, offset: int = 0) -> Event:
    raw = value if isinstance(value, bytes) else schemas.encode(topic, value)
    return Event(key.encode() if key else None, raw, Message(topic, 0, offset))


@dataclass
class FakePipe:
    settings: Any
    ctx: Any = None
    sent: dict[str, list[tuple[str, dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    status: dict[str, Any] = field(default_factory=dict)
    seen: dict[str, Any] = field(default_factory=dict)
    completed: dict[str, Any] = field(default_factory=dict)
    dead_lettered: int = 0

    async def send(self, topic: str, key: str, value: Any, *, acked: bool = False) -> None:
        # everything an agent sends must match its topic (what Pipeline.send enforces)
        data = json.loads(schemas.encode(topic, value))
        self.sent[topic].append((key, data))
