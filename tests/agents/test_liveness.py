"""Every job that has a job_id ends, whatever its events look like or whatever breaks:
refused direct events, an agent that crashes on one event, a stage that stalls."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import schemas
from agents import frames, resolve, status, supervisor, upload
from agents.guard import handle_guarded
from pipeline import stages
from pipeline.legacy.request import parse_export_body
from pipeline.settings import Settings
from pipeline.supervise import MAX_REDRIVES
from pipeline.synthetic import ArchiveSpec, write_dash
from tests.agents.fakes import FakePipe, event

SPEC = ArchiveSpec(seconds=4.0)


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"x": value}
    return value


LIVE_PATH = "mp4/cam/1/stream.mpd"


@pytest.fixture
def pipe(tmp_path: Path) -> Iterator[FakePipe]:
    archive = tmp_path / "archive"
    write_dash(archive / Path(LIVE_PATH).parent, SPEC)
    settings = Settings(
        data_dir=tmp_path / "data",
        archive_url=str(archive),
        output_url=str(tmp_path / "out"),
        allowed_buckets=frozenset({"archive-ok"}),
    )
    p = FakePipe(settings=settings, ctx=stages.StageContext.from_settings(settings))
    yield p
    p.ctx.close()


def _event(pipe: FakePipe, **body: Any) -> dict[str, Any]:
    assert SPEC.epoch_ms is not None
    fields = {"StartPos": SPEC.epoch_ms + 400, "Duration": 1000, "LivePath": LIVE_PATH, **body}
    return parse_export_body(fields, pipe.settings, now_ms=1).to_dict()


def _raw(value: Any) -> bytes:
    """An event's bytes as a producer outside this service might write them (unchecked)."""
    return json.dumps(value).encode()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def _ended_failed(pipe: FakePipe, job_id: str) -> dict[str, Any]:
    completed = [c for k, c in pipe.sent[schemas.COMPLETED] if k == job_id]
    assert len(completed) == 1, completed
    assert completed[0]["outcome"] == "failed"
    assert [s for k, s in pipe.sent[schemas.STATUS] if k == job_id][-1]["state"] == "failed"
    return completed[0]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"image_key": "../../../pwn/x.jpg"}, "image_key"),
        ({"duration_ms": 0.5}, "duration_ms"),
        ({"kind": "media"}, "video_key"),  # a media request without its video key
        ({"source": {"manifest": "/etc/stream.mpd"}}, "manifest"),
        ({"live_path": "mp4/../../etc/stream.mpd"}, "live_path"),
        ({"job_id": "F" * 32}, "job_id"),  # not the JobId of this request
        ({"slug": _deep(40)}, "slug"),
    ],
)
def test_a_refused_direct_request_still_ends_its_job(
    pipe: FakePipe, tmp_path: Path, change: dict[str, Any], field: str
) -> None:
    good = _event(pipe)
    bad = {**good, **change}
    run(resolve.handle(pipe, event(schemas.REQUESTS, _raw(bad), bad["job_id"])))
    ((_, dead),) = pipe.sent[schemas.DEADLETTER]
    assert field in dead["reason"]
    completed = _ended_failed(pipe, bad["job_id"])
    assert completed["request"] is None and completed["error"]["code"] == -2
    assert not pipe.sent[schemas.FRAMES] and not pipe.sent[schemas.TRANSCODES]
    assert not (tmp_path / "pwn").exists()


def test_a_bucket_outside_the_allow_list_is_refused_at_the_stage(pipe: FakePipe) -> None:
    from pipeline.legacy.request import request_from_fields
    from schemas.request import ArchiveSource

    own = ("schema_version", "job_id", "image_key", "video_key", "attempt")
    fields = {k: v for k, v in _event(pipe).items() if k not in own}
    # a well-formed event (its JobId and keys by the recipe) naming a bucket not allowed
    req = request_from_fields(fields | {"source": ArchiveSource(bucket="someone-elses")})
    run(resolve.handle(pipe, event(schemas.REQUESTS, req, req.job_id)))
    _, up = pipe.sent[schemas.UPLOADS][0]
    assert up["error"]["code"] == -3 and "someone-elses" in up["error"]["message"]


def test_a_broken_copy_of_a_running_jobs_request_does_not_fail_it(pipe: FakePipe) -> None:
    good = _event(pipe)
    pipe.status[good["job_id"]] = {"job_id": good["job_id"], "state": "transcoding"}
    broken = _raw({**good, "duration_ms": -1})
    run(resolve.handle(pipe, event(schemas.REQUESTS, broken, good["job_id"])))
    assert pipe.sent[schemas.DEADLETTER]
    assert not pipe.sent[schemas.COMPLETED]


def test_a_broken_event_between_stages_ends_its_job(pipe: FakePipe) -> None:
    job_id = _event(pipe)["job_id"]
    raw = b'{"schema_version": 2, "job_id": "' + job_id.encode() + b'", "request": 5}'
    run(frames.handle(pipe, event(schemas.FRAMES, raw, job_id)))
    _ended_failed(pipe, job_id)


def test_an_agent_that_breaks_on_one_event_ends_that_job_and_goes_on(pipe: FakePipe) -> None:
    good = _event(pipe)
    real_send = pipe.send
    broken = {"n": 0}

    async def send(topic: str, key: str, value: Any, *, acked: bool = False) -> None:
        if topic == schemas.FRAMES and broken["n"] == 0:
            broken["n"] += 1
            raise ConnectionError("broker went away")
        await real_send(topic, key, value, acked=acked)

    pipe.send = send  # type: ignore[method-assign]
    run(
        handle_guarded(
            pipe, event(schemas.REQUESTS, good, good["job_id"]), schemas.REQUESTS, resolve.handle
        )
    )
    completed = _ended_failed(pipe, good["job_id"])
    assert "ConnectionError" in completed["error"]["message"]


def test_an_upload_that_raises_still_completes_once(pipe: FakePipe, monkeypatch: Any) -> None:
    good = _event(pipe)
    run(resolve.handle(pipe, event(schemas.REQUESTS, good, good["job_id"])))
    _, task = pipe.sent[schemas.FRAMES][0]
    run(frames.handle(pipe, event(schemas.FRAMES, task, good["job_id"])))
    _, up = pipe.sent[schemas.UPLOADS][0]

    async def boom(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("ContentLength")

    monkeypatch.setattr(upload, "upload_step", boom)
    run(upload.handle(pipe, event(schemas.UPLOADS, up, good["job_id"])))
    run(upload.handle(pipe, event(schemas.UPLOADS, up, good["job_id"], offset=1)))  # again
    _ended_failed(pipe, good["job_id"])


def _fold_all(pipe: FakePipe) -> None:
    for key, st in list(pipe.sent[schemas.STATUS]):
        run(status.handle(pipe, event(schemas.STATUS, st, key)))
    pipe.sent[schemas.STATUS].clear()


def test_a_stalled_job_is_re_driven_then_failed_naming_the_stage(pipe: FakePipe) -> None:
    good = _event(pipe, FetchMedia=True)
    accepted = stages.status_event(good["job_id"], "accepted", at_ms=1, kind="media", request=good)
    run(status.handle(pipe, event(schemas.STATUS, accepted, good["job_id"])))
    every = set(range(pipe.settings.partitions))
    for attempt in range(1, MAX_REDRIVES + 1):
        pipe.ctx.clock = lambda t=10**12 + attempt * 10**9: t  # far past every timeout
        (verdict,) = run(supervisor.scan(pipe, every))  # type: ignore[arg-type]
        assert verdict.action == "redrive"
        (_, redo) = pipe.sent[schemas.REQUESTS][-1]
        assert redo["attempt"] == attempt
        # the resolve stage takes the re-drive although it has seen the job before
        before = len(pipe.sent[schemas.TRANSCODES])
        run(resolve.handle(pipe, event(schemas.REQUESTS, redo, good["job_id"], offset=attempt)))
        assert len(pipe.sent[schemas.TRANSCODES]) == before + 1
        _fold_all(pipe)
    pipe.ctx.clock = lambda: 10**13
    (verdict,) = run(supervisor.scan(pipe, every))  # type: ignore[arg-type]
    assert verdict.action == "fail"
    completed = _ended_failed(pipe, good["job_id"])
    assert "made no progress" in completed["error"]["message"]
    assert completed["request"]["job_id"] == good["job_id"]


def test_the_supervisor_leaves_jobs_of_partitions_it_does_not_own(pipe: FakePipe) -> None:
    good = _event(pipe)
    accepted = stages.status_event(good["job_id"], "accepted", at_ms=1, request=good)
    run(status.handle(pipe, event(schemas.STATUS, accepted, good["job_id"])))
    pipe.ctx.clock = lambda: 10**13
    mine = supervisor.partition_of(good["job_id"], pipe.settings.partitions)
    others = set(range(pipe.settings.partitions)) - {mine}
    assert run(supervisor.scan(pipe, others)) == []  # type: ignore[arg-type]
    assert len(run(supervisor.scan(pipe, {mine}))) == 1  # type: ignore[arg-type]


def test_a_job_held_by_a_live_worker_beats_and_is_not_re_driven(pipe: FakePipe) -> None:
    from agents import heartbeat

    good = _event(pipe, FetchMedia=True)
    accepted = stages.status_event(good["job_id"], "transcoding", at_ms=1, request=good)
    run(status.handle(pipe, event(schemas.STATUS, accepted, good["job_id"])))
    late = 10**13
    pipe.ctx.clock = lambda: late  # far past every timeout
    with heartbeat.holding(pipe.held, event(schemas.TRANSCODES, b"{}", good["job_id"])):
        assert run(heartbeat.beat(pipe)) == 1
    assert not pipe.held  # released once handled
    _fold_all(pipe)
    row = pipe.status[good["job_id"]]
    assert row["state"] == "transcoding" and row["updated_at_ms"] == late
    every = set(range(pipe.settings.partitions))
    assert run(supervisor.scan(pipe, every)) == []  # type: ignore[arg-type]
