"""The status page's server side: ``GET /jobs`` (the replica's newest jobs as JSON, behind
the same SessionId rule as the other reads) and ``GET /`` (one self-contained HTML file),
through aiohttp's test client.  The page in a browser: tests/ingress/test_page_chromium.py."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import schemas
from ingress.http import servable_file
from ingress.page import MAX_LIMIT, StatusPage
from pipeline import stages
from pipeline.jobs import JobStatus
from tests.ingress.http_client import BODY, FakeReplica, ingress_for, with_client

GOOD = "good-session"


async def _jobs(client: TestClient, query: str = "", **headers: str) -> tuple[int, Any]:
    resp = await client.get("/jobs" + query, headers=headers)
    return resp.status, await resp.json()


def _report(job_id: str, state: str, at_ms: int, **fields: Any) -> dict[str, Any]:
    """An export.status event as the live feed carries it."""
    event = stages.status_event(job_id, state, at_ms=at_ms, **fields)  # type: ignore[arg-type]
    out: dict[str, Any] = msgspec.to_builtins(event)
    return out


def _accept(pipe: Any, replica: FakeReplica, *, at_ms: int | None = None) -> str:
    """Fold the accepted event the POST published into the replica, as the live feed does
    (``at_ms``: restamped, so that jobs posted within one millisecond still have an order)."""
    job_id, event = pipe.sent[schemas.STATUS][-1]
    replica.fold(event if at_ms is None else {**event, "at_ms": at_ms})
    return str(job_id)


# --- GET /jobs ---------------------------------------------------------------------------


def test_jobs_lists_the_newest_first_with_state_progress_and_lack_length(tmp_path: Path) -> None:
    pipe, replica, ingress = ingress_for(tmp_path)

    async def check(client: TestClient) -> None:
        ids = []
        for i, duration in enumerate((1000, 2000, 3000)):
            await client.post("/export", json={**BODY, "Duration": duration})
            ids.append(_accept(pipe, replica, at_ms=1_000_000 + i))
        first, _, newest = ids
        at = 2_000_000
        replica.fold(_report(newest, "waiting_live", at, lack_length_ms=1200))
        replica.fold(_report(first, "done", at))
        status, body = await _jobs(client)
        assert status == 200 and body["total"] == 3 and body["limit"] == 50
        jobs = body["jobs"]
        assert [j["job_id"] for j in jobs] == ids[::-1]
        assert jobs[0]["state"] == "waiting_live" and jobs[0]["lack_length_ms"] == 1200
        assert 0 < jobs[0]["progress"] < 1
        assert jobs[0]["live_path"] == BODY["LivePath"] and jobs[0]["duration_ms"] == 3000
        assert jobs[0]["kind"] == "media" and jobs[0]["error"] is None
        assert jobs[2]["state"] == "done" and jobs[2]["progress"] == 1.0
        _, two = await _jobs(client, "?limit=2")
        assert [j["job_id"] for j in two["jobs"]] == ids[:0:-1] and two["total"] == 3

    with_client(ingress, check)
    pipe.ctx.close()


def test_jobs_link_local_outputs_once_the_file_is_there(tmp_path: Path) -> None:
    pipe, replica, ingress = ingress_for(tmp_path)
    job = "C" * 32
    replica.rows[job] = JobStatus(
        job_id=job,
        kind="media",
        state="done",
        image_key=f"export/{job}/été.jpg",
        video_key=f"export/{job}/été.mp4",
    ).to_dict()

    async def check(client: TestClient) -> None:
        (before,) = (await _jobs(client))[1]["jobs"]
        assert before["image"] == {"key": f"export/{job}/été.jpg", "url": None}
        folder = tmp_path / "out" / "export" / job
        folder.mkdir(parents=True)
        (folder / "été.jpg").write_bytes(b"JPEG")
        (folder / "été.mp4").write_bytes(b"MP4")
        (after,) = (await _jobs(client))[1]["jobs"]
        for name, ext, data in (("image", "jpg", b"JPEG"), ("video", "mp4", b"MP4")):
            assert after[name]["url"] == f"/files/export/{job}/%C3%A9t%C3%A9.{ext}"
            assert await (await client.get(after[name]["url"])).read() == data

    with_client(ingress, check)
    pipe.ctx.close()


def test_a_failed_job_carries_its_error_code_and_message(tmp_path: Path) -> None:
    pipe, replica, ingress = ingress_for(tmp_path)

    async def check(client: TestClient) -> None:
        await client.post("/export", json=BODY)
        job = _accept(pipe, replica)
        error = {"type": "InvalidRequest", "code": -2, "message": "range past the end"}
        replica.fold(_report(job, "failed", 2**40, error=error))
        (failed,) = (await _jobs(client))[1]["jobs"]
        assert failed["state"] == "failed"
        assert failed["error"] == {"code": -2, "message": "range past the end", "field": None}

    with_client(ingress, check)
    pipe.ctx.close()


def test_outputs_in_s3_carry_their_keys_and_no_links() -> None:
    job = "D" * 32
    rows = {job: JobStatus(job_id=job, kind="thumbnail", state="done", image_key="k.jpg").to_dict()}
    page = StatusPage(rows, lambda request: None, output_root=None, servable=servable_file)

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/jobs", page.jobs)
        async with TestClient(TestServer(app)) as client:
            (listed,) = (await _jobs(client))[1]["jobs"]
            assert listed["image"] == {"key": "k.jpg", "url": None} and listed["video"] is None

    asyncio.run(main())


def test_malformed_changelog_rows_are_listed_without_a_500(tmp_path: Path) -> None:
    pipe, replica, ingress = ingress_for(tmp_path)
    replica.rows["X"] = {"state": 7, "progress": "half", "request": "no", "error": "x"}
    replica.rows["Y"] = {"state": "failed", "progress": float("nan"), "created_at_ms": True}

    async def check(client: TestClient) -> None:
        status, body = await _jobs(client)
        assert status == 200
        views = {j["job_id"]: j for j in body["jobs"]}
        assert views["X"]["state"] == "accepted" and views["X"]["progress"] == 0.0
        assert views["Y"]["error"] == {"code": -9, "message": "the job failed", "field": None}

    with_client(ingress, check)
    pipe.ctx.close()


@pytest.mark.parametrize("limit", ["0", str(MAX_LIMIT + 1), "-1", "1e3", "ten", "٣", ""])
def test_a_limit_outside_1_to_the_bound_answers_400(tmp_path: Path, limit: str) -> None:
    pipe, _, ingress = ingress_for(tmp_path)

    async def check(client: TestClient) -> None:
        status, body = await _jobs(client, f"?limit={limit}")
        assert status == 400 and str(MAX_LIMIT) in body["error"]
        assert (await _jobs(client, f"?limit={MAX_LIMIT}"))[0] == 200

    with_client(ingress, check)
    pipe.ctx.close()


# --- auth ---------------------------------------------------------------------------------


def test_jobs_without_a_valid_session_id_answer_401_and_list_nothing(tmp_path: Path) -> None:
    pipe, replica, ingress = ingress_for(tmp_path, session_ids=frozenset({GOOD}))
    replica.rows["E" * 32] = JobStatus(job_id="E" * 32, kind="media", state="done").to_dict()

    async def check(client: TestClient) -> None:
        for query, headers in [
            ("", {}),
            ("", {"X-Session-Id": "bad"}),
            ("", {"X-Session-Id": GOOD.upper()}),
            ("?SessionId=", {}),
            (f"?sessionid={GOOD}", {}),  # the query name is case-sensitive, as for /files
        ]:
            resp = await client.get("/jobs" + query, headers=headers)
            text = await resp.text()
            assert resp.status == 401, (query, headers)
            assert resp.headers["WWW-Authenticate"].startswith("X-Session-Id")
            assert "E" * 32 not in text and "bad" not in text
            assert json.loads(text)["field"] == "SessionId"

    with_client(ingress, check)
    pipe.ctx.close()


def test_jobs_with_a_valid_session_id_in_header_or_query_answer(tmp_path: Path) -> None:
    pipe, replica, ingress = ingress_for(tmp_path, session_ids=frozenset({GOOD}))
    replica.rows["E" * 32] = JobStatus(job_id="E" * 32, kind="media", state="done").to_dict()

    async def check(client: TestClient) -> None:
        for status, body in [
            await _jobs(client, **{"X-Session-Id": GOOD}),
            await _jobs(client, f"?SessionId={GOOD}&limit=5"),
        ]:
            assert status == 200 and [j["job_id"] for j in body["jobs"]] == ["E" * 32]

    with_client(ingress, check)
    pipe.ctx.close()


def test_the_page_is_open_holds_no_job_and_lets_only_its_own_script_run(tmp_path: Path) -> None:
    pipe, replica, ingress = ingress_for(tmp_path, session_ids=frozenset({GOOD}))
    replica.rows["E" * 32] = JobStatus(job_id="E" * 32, kind="media", state="done").to_dict()

    async def check(client: TestClient) -> None:
        resp = await client.get("/")
        html = await resp.text()
        assert resp.status == 200 and resp.content_type == "text/html"
        assert "E" * 32 not in html
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing external
        (script,) = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        csp = resp.headers["Content-Security-Policy"]
        assert f"script-src 'sha256-{digest}';" in csp and "default-src 'none'" in csp

    with_client(ingress, check)
    pipe.ctx.close()
