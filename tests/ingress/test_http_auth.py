"""Reads behind the same door as writes: with EXPORT_SESSION_IDS set, GET /export/{id}
answers -3 and GET /files/... 401 unless a valid SessionId comes in the X-Session-Id header
or the SessionId query parameter; /healthz and /metrics stay open; with auth open nothing
changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from yarl import URL

from ingress.http import Ingress
from pipeline.errors import Unauthorized
from pipeline.jobs import JobStatus
from tests.ingress.http_client import BODY, FakeReplica, ingress_for, with_client

GOOD = "good-session"
JOB = "A" * 32


def _done(replica: FakeReplica, job_id: str) -> None:
    replica.rows[job_id] = JobStatus(
        job_id=job_id,
        kind="thumbnail",
        state="done",
        image_key=f"export/{job_id}/{job_id}.jpg",
        lack_length_ms=0,
    ).to_dict()


def _setup_on(tmp_path: Path) -> tuple[Any, FakeReplica, Ingress]:
    pipe, replica, ingress = ingress_for(tmp_path, session_ids=frozenset({GOOD, "other"}))
    _done(replica, JOB)
    jpg = tmp_path / "out" / "export" / JOB / f"{JOB}.jpg"
    jpg.parent.mkdir(parents=True)
    jpg.write_bytes(b"JPEG")
    return pipe, replica, ingress


DENIED: list[dict[str, str] | str] = [
    {},  # nothing
    {"X-Session-Id": ""},
    {"X-Session-Id": "bad"},
    f"SessionId={GOOD}%20",  # (a header value loses its trailing space in transit)
    {"X-Session-Id": GOOD.upper()},
    "SessionId=",
    "SessionId=bad",
    "sessionid=" + GOOD,  # the query name is case-sensitive, like the body's field
]


async def _get(client: TestClient, path: str, how: dict[str, str] | str) -> Any:
    if isinstance(how, str):
        return await client.get(URL(f"{path}?{how}", encoded=True))
    return await client.get(URL(path, encoded=True), headers=how)


def test_export_poll_without_a_valid_session_id_answers_minus_3(tmp_path: Path) -> None:
    pipe, _, ingress = _setup_on(tmp_path)

    async def check(client: TestClient) -> None:
        for how in DENIED:
            for job_id in (JOB, "B" * 32, "not-an-id"):
                resp = await _get(client, f"/export/{job_id}", how)
                assert resp.status == 200, how
                answer = await resp.json()
                assert answer["ErrorCode"] == -3 and answer["ErrorField"] == "SessionId", how
                assert "X-Session-Id" in answer["ErrorMessage"]
                # nothing about the job, not even whether it exists or its id is well-formed
                assert answer["JobId"] == "" and "ImagePath" not in answer
                assert answer.get("State") is None
                assert "bad" not in json.dumps(answer)

    with_client(ingress, check)
    pipe.ctx.close()


def test_export_poll_with_a_valid_session_id_in_header_or_query_answers(tmp_path: Path) -> None:
    pipe, _, ingress = _setup_on(tmp_path)

    async def check(client: TestClient) -> None:
        for how in ({"X-Session-Id": GOOD}, f"SessionId={GOOD}", "SessionId=other"):
            done = await (await _get(client, f"/export/{JOB}", how)).json()
            assert done["ErrorCode"] == 0 and done["JobId"] == JOB, how
            unknown = await (await _get(client, "/export/" + "B" * 32, how)).json()
            assert unknown["ErrorCode"] == -1, how
            malformed = await (await _get(client, "/export/xyz", how)).json()
            assert malformed["ErrorCode"] == -2 and malformed["ErrorField"] == "JobId", how
        # the header wins over the query when both come
        both = await client.get(f"/export/{JOB}?SessionId=bad", headers={"X-Session-Id": GOOD})
        assert (await both.json())["ErrorCode"] == 0

    with_client(ingress, check)
    pipe.ctx.close()


def test_files_without_a_valid_session_id_answer_401(tmp_path: Path) -> None:
    pipe, _, ingress = _setup_on(tmp_path)
    path = f"/files/export/{JOB}/{JOB}.jpg"

    async def check(client: TestClient) -> None:
        for how in DENIED:
            for target in (path, "/files/export/none.jpg", "/files/%00", "/files/%2e%2e/x"):
                resp = await _get(client, target, how)
                assert resp.status == 401, (how, target)
                assert resp.headers["WWW-Authenticate"].startswith("X-Session-Id")
                text = await resp.text()
                assert "JPEG" not in text and "bad" not in text

    with_client(ingress, check)
    pipe.ctx.close()


def test_files_with_a_valid_session_id_in_header_or_query_are_served(tmp_path: Path) -> None:
    pipe, _, ingress = _setup_on(tmp_path)
    path = f"/files/export/{JOB}/{JOB}.jpg"

    async def check(client: TestClient) -> None:
        for how in ({"X-Session-Id": GOOD}, f"SessionId={GOOD}", "SessionId=other"):
            resp = await _get(client, path, how)
            assert resp.status == 200 and await resp.read() == b"JPEG", how
            assert (await _get(client, "/files/%00", how)).status == 404, how
            assert (await _get(client, "/files/export/none.jpg", how)).status == 404, how

    with_client(ingress, check)
    pipe.ctx.close()


def test_healthz_and_metrics_stay_open(tmp_path: Path) -> None:
    pipe, _, ingress = _setup_on(tmp_path)

    async def check(client: TestClient) -> None:
        assert (await client.get("/healthz")).status == 200
        assert (await client.get("/metrics")).status == 200

    with_client(ingress, check)
    pipe.ctx.close()


def test_with_auth_open_reads_need_no_session_id(tmp_path: Path) -> None:
    pipe, replica, ingress = ingress_for(tmp_path)
    _done(replica, JOB)
    jpg = tmp_path / "out" / "export" / JOB / f"{JOB}.jpg"
    jpg.parent.mkdir(parents=True)
    jpg.write_bytes(b"JPEG")

    async def check(client: TestClient) -> None:
        for how in ({}, {"X-Session-Id": "anything"}, "SessionId=anything"):
            done = await (await _get(client, f"/export/{JOB}", how)).json()
            assert done["ErrorCode"] == 0, how
            files = await _get(client, f"/files/export/{JOB}/{JOB}.jpg", how)
            assert files.status == 200, how

    with_client(ingress, check)
    pipe.ctx.close()


def test_reads_ask_the_same_session_check_posts_do(tmp_path: Path) -> None:
    """One check for both doors: a plugged-in check sees the reads' ids too."""
    pipe, replica, ingress = ingress_for(tmp_path, session_ids=frozenset({GOOD}))
    _done(replica, JOB)
    seen: list[object] = []

    class Recording:
        name = "recording"

        def check(self, session_id: object) -> None:
            seen.append(session_id)
            if session_id != "plugged":
                raise Unauthorized("SessionId is not valid", field="SessionId")

        def startup_message(self) -> str:
            return "auth: recording"

    ingress.sessions = Recording()

    async def check(client: TestClient) -> None:
        posted = await client.post("/export", json={**BODY, "SessionId": "plugged"})
        assert (await posted.json())["ErrorCode"] == 1
        polled = await client.get(f"/export/{JOB}", headers={"X-Session-Id": "plugged"})
        assert (await polled.json())["ErrorCode"] == 0
        assert (await client.get("/files/x?SessionId=plugged")).status == 404
        assert (await client.get("/files/x?SessionId=" + GOOD)).status == 401
        assert (await client.get("/files/x")).status == 401

    with_client(ingress, check)
    pipe.ctx.close()
    assert seen == ["plugged", "plugged", "plugged", GOOD, None]


def test_a_replica_row_is_never_read_for_a_denied_poll(tmp_path: Path) -> None:
    pipe, _, _ = ingress_for(tmp_path, session_ids=frozenset({GOOD}))
    looked: list[str] = []

    class Watching(FakeReplica):
        def get(self, job_id: str) -> dict[str, Any] | None:
            looked.append(job_id)
            return None

    ingress = Ingress(pipe, Watching())  # type: ignore[arg-type]

    async def check(client: TestClient) -> None:
        assert (await (await client.get(f"/export/{JOB}")).json())["ErrorCode"] == -3

    with_client(ingress, check)
    pipe.ctx.close()
    assert looked == []
