"""The HTTP adapter against a recorded pipeline and an in-memory status replica."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

import schemas
from ingress.http import Ingress, drain
from pipeline import stages
from pipeline.jobs import JobStatus
from tests.ingress.http_client import BODY, FakeReplica, ingress_for, with_client


def test_post_publishes_once_and_answers_work_not_finish(tmp_path: Path) -> None:
    pipe, replica, ingress = ingress_for(tmp_path)

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

    with_client(ingress, check)
    pipe.ctx.close()


def test_thumbnail_waits_up_to_the_sync_budget(tmp_path: Path) -> None:
    pipe, replica, ingress = ingress_for(tmp_path)

    async def check(client: TestClient) -> None:
        answer = await (await client.post("/export", json={**BODY, "FetchMedia": False})).json()
        assert answer["ErrorCode"] == 1
        assert replica.waited == [1.5]

    with_client(ingress, check)
    pipe.ctx.close()


def test_errors_keep_http_200_with_negative_codes(tmp_path: Path) -> None:
    pipe, _, ingress = ingress_for(tmp_path, session_ids=frozenset({"good"}))

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
        headers = {"X-Session-Id": "good"}
        missing = await (await client.get("/export/" + "A" * 32, headers=headers)).json()
        assert missing["ErrorCode"] == -1 and missing["JobId"] == "A" * 32
        assert not pipe.sent[schemas.REQUESTS]

    with_client(ingress, check)
    pipe.ctx.close()


def test_files_never_leave_the_output_root(tmp_path: Path) -> None:
    pipe, _, ingress = ingress_for(tmp_path)
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

    with_client(ingress, check)
    pipe.ctx.close()


def test_healthz_and_drain(tmp_path: Path) -> None:
    pipe, replica, ingress = ingress_for(tmp_path)

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

    with_client(ingress, check)
    pipe.ctx.close()


# --- overload ----------------------------------------------------------------------------


def _finish(replica: FakeReplica, job_id: str, state: str = "done", **fields: Any) -> None:
    replica.fold(stages.status_event(job_id, "accepted", at_ms=1, kind="media"))
    replica.fold(stages.status_event(job_id, state, at_ms=2, **fields))  # type: ignore[arg-type]


def test_new_jobs_over_max_pending_get_minus_4_and_polls_still_answer(tmp_path: Path) -> None:
    pipe, replica, ingress = ingress_for(tmp_path, max_pending=2)

    async def check(client: TestClient) -> None:
        a = await (await client.post("/export", json=BODY)).json()
        b = await (await client.post("/export", json={**BODY, "Duration": 1000})).json()
        assert a["ErrorCode"] == b["ErrorCode"] == 1
        # A and B are unfinished (published here, not yet in the replica): C is refused
        body_c = {**BODY, "Duration": 2000}
        refused = await (await client.post("/export", json=body_c)).json()
        assert refused["ErrorCode"] == -4 and refused["TimeWait"] > 0
        assert refused["ErrorField"] == "EXPORT_MAX_PENDING"
        assert "2 jobs are unfinished" in refused["ErrorMessage"]
        assert refused["JobId"] and refused["JobId"] not in (a["JobId"], b["JobId"])
        # polls of known jobs answer as usual, and nothing was published for C
        assert (await (await client.post("/export", json=BODY)).json())["ErrorCode"] == 1
        assert len(pipe.sent[schemas.REQUESTS]) == 2
        # the replica shows A (still running) and then A done: room for C again
        replica.fold(stages.status_event(a["JobId"], "accepted", at_ms=1, kind="media"))
        assert ingress.pending_count() == 2
        _finish(replica, a["JobId"], lack_length_ms=0)
        assert ingress.pending_count() == 1
        accepted = await (await client.post("/export", json=body_c)).json()
        assert accepted["ErrorCode"] == 1
        assert len(pipe.sent[schemas.REQUESTS]) == 3

    with_client(ingress, check)
    pipe.ctx.close()


# --- retention ---------------------------------------------------------------------------


def test_an_expired_job_is_forgotten_and_the_same_body_starts_a_new_job(tmp_path: Path) -> None:
    from pipeline.retention import REPLICA_GRACE_MS

    pipe, _, _ = ingress_for(tmp_path)
    ttl = 60_000
    now = [10_000_000]
    replica = FakeReplica(ttl_ms=ttl, clock=lambda: now[0])
    ingress = Ingress(pipe, replica)  # type: ignore[arg-type]
    dropped: list[str] = []
    replica.listen(lambda job_id, old, new: dropped.append(job_id) if new is None else None)

    async def check(client: TestClient) -> None:
        job = (await (await client.post("/export", json=BODY)).json())["JobId"]
        replica.fold(stages.status_event(job, "accepted", at_ms=now[0], kind="media"))
        replica.fold(stages.status_event(job, "done", at_ms=now[0] + 5, lack_length_ms=0))
        assert replica.prune() == []  # finished just now
        now[0] += ttl + REPLICA_GRACE_MS + 10  # the TTL (and the replica's grace) passes
        assert (await (await client.post("/export", json=BODY)).json())["ErrorCode"] == 5
        assert replica.prune() == [job]
        assert dropped == [job] and replica.get(job) is None
        assert job not in ingress.submitted and replica.unfinished_count() == 0
        again = await (await client.post("/export", json=BODY)).json()
        assert again["JobId"] == job and again["ErrorCode"] == 1
        assert [k for k, _ in pipe.sent[schemas.REQUESTS]] == [job, job]  # a new job

    with_client(ingress, check)
    pipe.ctx.close()


def test_a_tombstone_on_the_status_changelog_drops_the_row(tmp_path: Path) -> None:
    replica = FakeReplica()
    job = "C" * 32
    replica.fold(stages.status_event(job, "accepted", at_ms=1, kind="media"))
    assert replica.unfinished_count() == 1
    replica._apply(job.encode(), None)
    assert replica.get(job) is None and replica.unfinished_count() == 0
