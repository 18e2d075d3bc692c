"""What the stage tests share: a generated archive, a local output store, a recorder of
status reports and a clock whose waits take no time."""

from __future__ import annotations

import io
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import av

import schemas
from pipeline import stages
from pipeline.legacy.request import parse_export_body
from pipeline.settings import Settings
from pipeline.synthetic import ArchiveSpec, read_frame_index
from pipeline.synthetic.growing import GrowingArchive
from schemas.request import ExportRequest

EPOCH = 1_562_253_600_000
SPEC = ArchiveSpec(seconds=6.0, epoch_ms=EPOCH)
LIVE_PATH = "mp4/cam/1/stream.mpd"


class Recorder:
    """Collects what a stage publishes on export.status (validated like the real topic)."""

    def __init__(self) -> None:
        self.events: list[schemas.StatusEvent] = []

    async def __call__(self, event: schemas.StatusEvent) -> None:
        schemas.convert(schemas.STATUS, event)
        self.events.append(event)

    def states(self) -> list[str]:
        return [e.state for e in self.events]


class FakeClock:
    """The stage's clock and sleep in one: a wait advances the clock by exactly its length,
    so what a test asserts about the live wait does not depend on the machine's speed."""

    def __init__(self) -> None:
        self.now = int(time.time() * 1000)
        self.waits: list[float] = []

    def __call__(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += round(seconds * 1000)


def make_ctx(tmp_path: Path, archive_root: Path, **overrides: Any) -> stages.StageContext:
    settings = Settings(
        data_dir=tmp_path / "data",
        archive_url=str(archive_root),
        output_url=str(tmp_path / "out"),
        **overrides,
    )
    return stages.StageContext.from_settings(settings)


def make_request(ctx: stages.StageContext, **fields: Any) -> ExportRequest:
    body = {
        "StartPos": EPOCH + 1000,
        "Duration": 2000,
        "LivePath": LIVE_PATH,
        "FetchMedia": False,
        "story": {"id": "S1", "name": "story"},
    }
    body.update(fields)
    return parse_export_body(body, ctx.settings, now_ms=1)


def first_frame(data: bytes) -> int | None:
    with av.open(io.BytesIO(data), "r") as c:
        return read_frame_index(next(iter(c.decode(video=0))))


def live_archive(tmp_path: Path, kind: str, published: float) -> tuple[GrowingArchive, str, int]:
    """A 10 s growing recording whose archive time 4 s is "now", published up to
    ``published`` s; returns it, its LivePath and its epoch."""
    epoch = int(time.time() * 1000) - 4000
    folder = "mp4/live/1" if kind == "dash" else "ts/live/1"
    live = GrowingArchive(
        tmp_path / "archive" / folder, replace(SPEC, seconds=10.0, epoch_ms=epoch), kind=kind
    )
    live.publish_until(published)
    return live, f"{folder}/{live.manifest.name}", epoch
