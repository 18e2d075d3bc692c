"""The HTTP adapter against a recorded pipeline and an in-memory status replica."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

import schemas
from ingress.http import Ingress, drain
from pipeline import stages
from pipeline.jobs import JobStatus
from pipeline.settings import Settings
from tests.agents.fakes import FakePipe

LIVE_PATH = "mp4/cam/1/stream.mpd"


class FakeReplica:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.waited: list[float] = []

    def get(self, job_id: str) -> dict[str, Any] | None:
        return self.rows.get(job_id)

    async def wait_for(self, job_id: str, predicate: Any, timeout: float) -> dict[str, Any] | None:
        return self.rows.get(job_id)

    async def wait_final(self, job_id: str, timeout: float) -> dict[str, Any] | None:
        self.waited.append(timeout)
        return self.rows.get(job_id)


def _setup(tmp_path: Path, **overrides: Any) -> tuple[FakePipe, FakeReplica, Ingress]:
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


def _with_client(ingress: Ingress, fn: Callable[[TestClient], Awaitable[None]]) -> None:
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


def test_post_publishes_once_and_answers_work_not_finish(tmp_path: Path) -> None:
    pipe, replica, ingress = _setup(tmp_path)

    async def check(client: TestClient) -> None:
        a = await (await client.post("/export", json=BODY)).json()
        b = await (await client.post("/export", json=BODY)).json()
        assert a["ErrorCode"] == b["ErrorCode"] == 1 and a["TimeWait"] > 0
        assert a["JobId"] == b["JobId"]
        assert len(pipe.sent[schemas.REQUESTS]) == 1
        assert [e["state"] for _, e in pipe.sent[schemas.STATUS]] == ["accepted"]
        assert not replica.waited  # media answers at once
        # the job finishes somewhere in the cluster; the replica sees it
        job = a["JobId"]
        replica.rows[job] = JobStatus(
            job_id=job,
            kind="media",
            state="done",
            image_key=f"export/{job}/{job}.jpg",
            video_key=f"export/{job}/{job}.mp4",
            lack_length_ms=0,
        ).to_dict()
        done = await (await client.post("/export", json=BODY)).json()
        assert done["ErrorCode"] == 5 and done["VideoPath"] == f"/export/{job}/{job}.mp4"
        assert (await (await client.get(f"/export/{job}")).json()) == done
        assert len(pipe.sent[schemas.REQUESTS]) == 1

    _with_client(ingress, check)
    pipe.ctx.close()


def test_thumbnail_waits_up_to_the_sync_budget(tmp_path: Path) -> None:
    pipe, replica, ingress = _setup(tmp_path)

    async def check(client: TestClient) -> None:
        answer = await (await client.post("/export", json={**BODY, "FetchMedia": False})).json()
        assert answer["ErrorCode"] == 1
        assert replica.waited == [1.5]

    _with_client(ingress, check)
    pipe.ctx.close()


def test_errors_keep_http_200_with_negative_codes(tmp_path: Path) -> None:
    pipe, _, ingress = _setup(tmp_path, session_ids=frozenset({"good"}))

    async def check(client: TestClient) -> None:
        resp = await client.post("/export", data=b"{not json")
        assert resp.status == 200
        assert (await resp.json())["ErrorCode"] == -2
        unknown = {**BODY, "SessionId": "good", "LivePath": "mp4/nobody/1/stream.mpd"}
        answer = await (await client.post("/export", json=unknown)).json()
        assert answer["ErrorCode"] == -1 and answer["ErrorMessage"] == "not such dir"
        assert answer["JobId"]
        denied = await (await client.post("/export", json={**BODY, "SessionId": "bad"})).json()
        assert denied["ErrorCode"] == -3 and "bad" not in json.dumps(denied)
        missing = await (await client.get("/export/" + "A" * 32)).json()
        assert missing["ErrorCode"] == -1 and missing["JobId"] == "A" * 32
        assert not pipe.sent[schemas.REQUESTS]

    _with_client(ingress, check)
    pipe.ctx.close()


def test_files_never_leave_the_output_root(tmp_path: Path) -> None:
    pipe, _, ingress = _setup(tmp_path)
    out = tmp_path / "out"
    (out / "export" / "J").mkdir(parents=True)
    (out / "export" / "J" / "a.jpg").write_bytes(b"JPEG")
    (out / "staging" / "J").mkdir(parents=True)
    (out / "staging" / "J" / "image.jpg").write_bytes(b"staged")
    (tmp_path / "secret.txt").write_text("secret")
    (out / "export" / "link").symlink_to(tmp_path / "secret.txt")

    async def check(client: TestClient) -> None:
        ok = await client.get("/files/export/J/a.jpg")
        assert ok.status == 200 and await ok.read() == b"JPEG"
        for path in [
            "/files/../secret.txt",
            "/files/%2e%2e/secret.txt",
            "/files/export/link",
            "/files/staging/J/image.jpg",
            "/files/export/J/none.jpg",
            "/files//etc/passwd",
        ]:
            resp = await client.get(path)
            assert resp.status == 404, path
            assert b"secret" not in await resp.read()

    _with_client(ingress, check)
    pipe.ctx.close()


def test_healthz_and_drain(tmp_path: Path) -> None:
    pipe, replica, ingress = _setup(tmp_path)

    async def check(client: TestClient) -> None:
        assert (await (await client.get("/healthz")).json())["ok"] is True
        answer = await (await client.post("/export", json=BODY)).json()
        unfinished = await drain(ingress, timeout=0.3)
        assert unfinished == [answer["JobId"]]
        resp = await client.get("/healthz")
        assert resp.status == 503
        other = await (await client.post("/export", json={**BODY, "Duration": 1000})).json()
        assert other["ErrorCode"] == -4  # not accepting new jobs while shutting down
        polled = await (await client.post("/export", json=BODY)).json()
        assert polled["ErrorCode"] == 1  # but polls of accepted jobs still answer
        replica.rows[answer["JobId"]] = {
            **JobStatus(job_id=answer["JobId"], kind="media", state="failed").to_dict()
        }
        assert await drain(ingress, timeout=0.3) == []

    _with_client(ingress, check)
    pipe.ctx.close()
