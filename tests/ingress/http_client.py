"""One Ingress in front of a recorded pipeline and an in-memory status replica, and an
aiohttp test client to talk to it: what the HTTP tests share."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

import schemas
from ingress.http import Ingress
from ingress.replica import StatusReplica
from pipeline import stages
from pipeline.settings import Settings
from tests.agents.fakes import FakePipe

LIVE_PATH = "mp4/cam/1/stream.mpd"


class FakeReplica(StatusReplica):
    """The real replica's bookkeeping (rows, listeners, unfinished count) without Kafka:
    tests feed it export.status events through ``fold`` like the live feed does."""

    def __init__(self, **options: Any) -> None:
        super().__init__("127.0.0.1:9", "changelog", **options)
        self.waited: list[float] = []

    def fold(self, event: dict[str, Any]) -> None:
        self._fold(schemas.encode(schemas.STATUS, event))

    def get(self, job_id: str) -> dict[str, Any] | None:
        return self.rows.get(job_id)

    async def wait_for(self, job_id: str, predicate: Any, timeout: float) -> dict[str, Any] | None:
        return self.rows.get(job_id)

    async def wait_final(self, job_id: str, timeout: float) -> dict[str, Any] | None:
        self.waited.append(timeout)
        return self.rows.get(job_id)


def ingress_for(tmp_path: Path, **overrides: Any) -> tuple[FakePipe, FakeReplica, Ingress]:
    archive = tmp_path / "archive"
    (archive / Path(LIVE_PATH).parent).mkdir(parents=True)
    (archive / LIVE_PATH).write_text("<MPD/>")
    settings = Settings(
        data_dir=tmp_path / "data",
        archive_url=str(archive),
        output_url=str(tmp_path / "out"),
        sync_wait_ms=1500,
        **overrides,
    )
    pipe = FakePipe(settings=settings, ctx=stages.StageContext.from_settings(settings))
    replica = FakeReplica()
    return pipe, replica, Ingress(pipe, replica)  # type: ignore[arg-type]


def with_client(ingress: Ingress, fn: Callable[[TestClient], Awaitable[None]]) -> None:
    async def main() -> None:
        async with TestClient(TestServer(ingress.web_app())) as client:
            await fn(client)

    asyncio.run(main())


BODY = {
    "StartPos": 1_562_253_612_833,
    "Duration": 9000,
    "LivePath": LIVE_PATH,
    "FetchMedia": True,
    "export_type": 1,
}


class EncodingPipe(FakePipe):
    """A FakePipe (which already encodes and validates each event as Pipeline.send does),
    kept as a name for the tests that rely on that."""
