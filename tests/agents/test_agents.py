"""Each agent's handler on one event, without a broker: decoding, dead-lettering,
one job per job_id, the status fold, and exactly one export.completed per job."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import schemas
from agents import frames, resolve, status, transcode, upload
from pipeline import stages
from pipeline.legacy.request import parse_export_body
from pipeline.settings import Settings
from pipeline.synthetic import ArchiveSpec, write_dash
from tests.agents.fakes import FakePipe, event

SPEC = ArchiveSpec(seconds=4.0)
LIVE_PATH = "mp4/cam/1/stream.mpd"


@pytest.fixture
def pipe(tmp_path: Path) -> Iterator[FakePipe]:
    archive = tmp_path / "archive"
    write_dash(archive / Path(LIVE_PATH).parent, SPEC)
    settings = Settings(
        data_dir=tmp_path / "data", archive_url=str(archive), output_url=str(tmp_path / "out")
    )
    p = FakePipe(settings=settings, ctx=stages.StageContext.from_settings(settings))
    yield p
    p.ctx.close()


def _req(pipe: Any, **fields: Any) -> Any:
    assert SPEC.epoch_ms is not None
    body = {
        "StartPos": SPEC.epoch_ms + 400,
        "Duration": 1000,
        "LivePath": LIVE_PATH,
        "FetchMedia": False,
    }
    body.update(fields)
    return parse_export_body(body, pipe.settings, now_ms=1)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_request_flows_through_every_agent_once(pipe: Any) -> None:
    req = _req(pipe)
    ev = req.to_dict()
    run(resolve.handle(pipe, event(schemas.REQUESTS, ev, req.job_id)))
    run(resolve.handle(pipe, event(schemas.REQUESTS, ev, req.job_id, offset=1)))  # again
    assert len(pipe.sent[schemas.FRAMES]) == 1  # the duplicate is a poll, not a job
    _, task = pipe.sent[schemas.FRAMES][0]
    run(frames.handle(pipe, event(schemas.FRAMES, task, req.job_id)))
    _, up = pipe.sent[schemas.UPLOADS][0]
    run(upload.handle(pipe, event(schemas.UPLOADS, up, req.job_id)))
    run(upload.handle(pipe, event(schemas.UPLOADS, up, req.job_id, offset=1)))  # redelivery
    assert len(pipe.sent[schemas.COMPLETED]) == 1
    assert pipe.sent[schemas.COMPLETED][0][1]["outcome"] == "ok"
    for key, st in pipe.sent[schemas.STATUS]:
        run(status.handle(pipe, event(schemas.STATUS, st, key)))
    row = pipe.status[req.job_id]
    assert row["state"] == "done" and row["progress"] == 1.0
    assert set(row["stages"]) >= {"resolve", "frames", "upload"}


def test_media_job_goes_to_transcode(pipe: Any) -> None:
    req = _req(pipe, FetchMedia=True, export_type=0)
    run(resolve.handle(pipe, event(schemas.REQUESTS, req.to_dict(), req.job_id)))
    _, task = pipe.sent[schemas.TRANSCODES][0]
    run(transcode.handle(pipe, event(schemas.TRANSCODES, task, req.job_id)))
    _, up = pipe.sent[schemas.UPLOADS][0]
    assert {a["role"] for a in up["artifacts"]} == {"image", "video"}
    assert up["delivered_ms"] == 1000


def test_failing_job_still_completes_once(pipe: Any) -> None:
    req = _req(pipe, LivePath="mp4/gone/1/stream.mpd")
    run(resolve.handle(pipe, event(schemas.REQUESTS, req.to_dict(), req.job_id)))
    assert not pipe.sent[schemas.FRAMES]
    _, up = pipe.sent[schemas.UPLOADS][0]
    assert up["error"]["code"] == -1
    run(upload.handle(pipe, event(schemas.UPLOADS, up, req.job_id)))
    completed = pipe.sent[schemas.COMPLETED]
    assert len(completed) == 1 and completed[0][1]["outcome"] == "failed"
    assert pipe.sent[schemas.STATUS][-1][1]["state"] == "failed"


@pytest.mark.parametrize(
    ("handler", "topic"),
    [
        (resolve.handle, schemas.REQUESTS),
        (frames.handle, schemas.FRAMES),
        (transcode.handle, schemas.TRANSCODES),
        (upload.handle, schemas.UPLOADS),
        (status.handle, schemas.STATUS),
    ],
)
def test_undecodable_events_are_dead_lettered(pipe: Any, handler: Any, topic: str) -> None:
    run(handler(pipe, event(topic, b"\x00garbage", "K", offset=42)))
    ((key, dead),) = pipe.sent[schemas.DEADLETTER]
    assert base64.b64decode(dead["original_b64"]) == b"\x00garbage"
    assert dead["topic"] == topic and dead["offset"] == 42 and key == "K"
    assert [t for t in pipe.sent if pipe.sent[t]] == [schemas.DEADLETTER]


def test_status_fold_never_moves_backwards(pipe: Any) -> None:
    job = "0123456789ABCDEF0123456789ABCDEF"
    for ev in [
        stages.status_event(job, "accepted", at_ms=1, kind="media"),
        stages.status_event(job, "transcoding", at_ms=3, progress=0.5),
        stages.status_event(job, "resolving", at_ms=2),  # late
        stages.status_event(job, "done", at_ms=4, lack_length_ms=0),
        stages.status_event(
            job, "failed", at_ms=5, error={"type": "X", "code": -9, "message": "m"}
        ),
    ]:
        run(status.handle(pipe, event(schemas.STATUS, ev, job)))
    assert pipe.status[job]["state"] == "done"


def test_a_redelivered_request_is_processed_again(pipe: Any) -> None:
    # The same event again (crash before its offset was committed) must not be lost.
    req = _req(pipe)
    ev = event(schemas.REQUESTS, req.to_dict(), req.job_id, offset=7)
    run(resolve.handle(pipe, ev))
    run(resolve.handle(pipe, ev))
    assert len(pipe.sent[schemas.FRAMES]) == 2


def test_retention_timer_forgets_finished_jobs_past_the_ttl(pipe: FakePipe) -> None:
    from agents import retention
    from pipeline.jobs import JobStatus
    from pipeline.retention import STATUS_GRACE_MS

    now = pipe.ctx.clock()
    old = now - pipe.settings.job_ttl_ms - STATUS_GRACE_MS - 1
    done = JobStatus(job_id="D" * 32, kind="media", state="done").to_dict()
    running = JobStatus(job_id="R" * 32, kind="media", state="transcoding").to_dict()
    pipe.status.update({"D" * 32: {**done, "updated_at_ms": old}, "R" * 32: running})
    pipe.seen.update({"D" * 32: {"at": [0, 1], "ms": old}, "R" * 32: {"at": [0, 2], "ms": old}})
    dict.__setitem__(pipe.completed, "D" * 32, {"outcome": "ok", "completed_at_ms": old})
    dropped = retention.prune(pipe)  # type: ignore[arg-type]
    assert dropped == {"seen": 1, "completed": 1, "status": 1}
    assert list(pipe.status) == list(pipe.seen) == ["R" * 32] and not pipe.completed
