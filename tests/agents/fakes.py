"""A broker-less stand-in for service.app.Pipeline: sends are recorded, tables are dicts."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import schemas
from agents.local import LocalDelivery


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


class ChangelogTable(dict[str, Any]):
    """A table whose every write is also an event on its changelog topic (``sent``), like
    the completed table whose changelog is export.completed."""

    def __init__(self, sent: dict[str, list[tuple[str, dict[str, Any]]]], topic: str) -> None:
        super().__init__()
        self.sent, self.topic = sent, topic

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.sent[self.topic].append((key, json.loads(schemas.encode(self.topic, value))))


@dataclass
class FakePipe:
    settings: Any
    ctx: Any = None
    sent: dict[str, list[tuple[str, dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    status: dict[str, Any] = field(default_factory=dict)
    seen: dict[str, Any] = field(default_factory=dict)
    completed: dict[str, Any] = field(init=False)
    dead_lettered: int = 0
    held: Counter[str] = field(default_factory=Counter)
    held_since: dict[str, int] = field(default_factory=dict)
    # no broker, so nothing is ever handed over in process (tests/agents/test_local.py)
    local: LocalDelivery = field(default_factory=lambda: LocalDelivery(enabled=False))

    def __post_init__(self) -> None:
        self.completed = ChangelogTable(self.sent, schemas.COMPLETED)

    async def flush(self) -> None:
        return None

    async def send(
        self, topic: str, key: str, value: Any, *, acked: bool = False, local: bool = True
    ) -> None:
        # everything an agent sends must match its topic (what Pipeline.send enforces)
        data = json.loads(schemas.encode(topic, value))
        self.sent[topic].append((key, data))

    def hand(self, topic: str, key: str, event: Any, meta: Any) -> bool:
        return False
