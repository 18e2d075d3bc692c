from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

import schemas
from pipeline import errors
from pipeline.errors import (
    ExportError,
    InvalidRequest,
    MediaError,
    Overloaded,
    SourceNotFound,
    StorageFailure,
    Unauthorized,
)
from pipeline.jobs import STATES, JobStatus, advance, error_from_dict, failed_update
from schemas import StatusEvent
from tests.pipeline.statuses import JOB, MEDIA_FLOW, T0, run, upd

RANK = {s: i for i, s in enumerate(STATES)} | {"failed": len(STATES) - 2}


# --- advance -----------------------------------------------------------------------------


def test_a_media_job_moves_through_its_states() -> None:
    status: JobStatus | None = None
    seen: list[JobStatus] = []
    for u in MEDIA_FLOW:
        status = advance(status, u)
        seen.append(status)
    assert [s.progress for s in seen] == sorted(s.progress for s in seen)
    assert [RANK[s.state] for s in seen] == sorted(RANK[s.state] for s in seen)
    final = seen[-1]
    assert final.state == "done" and final.progress == 1.0 and final.lack_length_ms == 0
    assert final.kind == "media"
    assert (final.image_key, final.video_key) == (f"export/{JOB}/c.jpg", f"export/{JOB}/c.mp4")
    assert final.stages["transcoding"] == {"start_ms": T0 + 30, "end_ms": T0 + 4040}
    assert final.stages["grab"] == {"start_ms": T0 + 2040, "end_ms": T0 + 2300}
    assert final.stages["uploading"] == {"start_ms": T0 + 4040, "end_ms": T0 + 4200}
    assert final.created_at_ms == T0 and final.updated_at_ms == T0 + 4200


def test_progress_is_banded_per_state() -> None:
    mid = run(*MEDIA_FLOW[:6])  # transcoding at 50 %
    assert mid.state == "transcoding" and mid.state_progress == 0.5
    assert 0.15 < mid.progress < 0.9


def test_a_split_clip_progresses_by_the_mean_of_its_chunks_in_any_order() -> None:
    start = [upd("accepted", 0, kind="media"), upd("transcoding", 10, progress=0.0, chunks=4)]
    reports = [(2, 1.0), (0, 0.5), (2, 0.3), (3, 1.0), (0, 1.0), (1, 1.0)]
    seen = []
    for k, p in enumerate(reports):
        chunk, progress = p
        start.append(upd("transcoding", 20 + k, progress=progress, chunk=chunk, chunks=4))
        seen.append(run(*start))
    # a chunk's late, lower report (chunk 2 at 0.3 after 1.0) does not pull the job back
    assert [s.state_progress for s in seen] == [0.25, 0.375, 0.375, 0.625, 0.75, 1.0]
    assert seen[-1].chunks == 4 and seen[-1].chunk_progress["1"] == 1.0
    restored = JobStatus.from_dict(seen[2].to_dict())
    assert restored == seen[2]


def test_any_order_of_delivery_ends_in_the_same_final_status() -> None:
    expected = run(*MEDIA_FLOW)
    rng = random.Random(1234)
    for _ in range(200):
        shuffled = MEDIA_FLOW[:]
        rng.shuffle(shuffled)
        status: JobStatus | None = None
        last_progress, last_rank = 0.0, 0
        for u in shuffled:
            status = advance(status, u)
            assert status.progress >= last_progress
            assert RANK[status.state] >= last_rank
            last_progress, last_rank = status.progress, RANK[status.state]
        assert status is not None
        assert (status.state, status.progress, status.lack_length_ms) == ("done", 1.0, 0)
        assert (status.image_key, status.video_key) == (expected.image_key, expected.video_key)


def test_redelivery_is_idempotent() -> None:
    once = run(*MEDIA_FLOW[:6])
    twice = advance(once, MEDIA_FLOW[5])
    assert twice == once
    again = run(*MEDIA_FLOW[:6], *MEDIA_FLOW[:6])
    assert again.state == once.state and again.progress == once.progress


def test_late_update_of_an_earlier_state_does_not_move_back() -> None:
    status = run(*MEDIA_FLOW[:9])  # uploading
    late = advance(status, upd("transcoding", 3000, progress=0.75))
    assert late.state == "uploading"
    assert late.progress == status.progress
    assert late.state_progress == status.state_progress


def test_progress_never_decreases_within_a_state() -> None:
    status = run(MEDIA_FLOW[0], upd("transcoding", 10, progress=0.6))
    after = advance(status, upd("transcoding", 20, progress=0.3))
    assert after.state_progress == 0.6 and after.progress == status.progress


def test_done_and_failed_are_final_first_one_wins() -> None:
    done = run(*MEDIA_FLOW)
    assert advance(done, upd("failed", 5000, error=MediaError("x", obj="seg").to_dict())) == done
    assert advance(done, upd("transcoding", 5000, progress=1.0)) == done
    failed = run(MEDIA_FLOW[0], failed_update(JOB, SourceNotFound("gone", obj="m.mpd"), now_ms=T0))
    assert failed.state == "failed" and failed.error is not None
    assert failed.error["code"] == -1
    assert advance(failed, upd("done", 100)) == failed


def test_failed_without_an_error_gets_a_generic_one() -> None:
    status = run(MEDIA_FLOW[0], upd("failed", 5))
    assert status.error is not None and status.error["code"] == ExportError.code


def test_lack_length_follows_the_latest_update_within_a_state() -> None:
    status = run(MEDIA_FLOW[0], upd("waiting_live", 100, lack_length_ms=6000))
    status = advance(status, upd("waiting_live", 3000, lack_length_ms=3000))
    assert status.lack_length_ms == 3000
    stale = advance(status, upd("waiting_live", 2000, lack_length_ms=4000))  # older, redelivered
    assert stale.lack_length_ms == 3000
    done = advance(stale, upd("done", 7000, lack_length_ms=500))  # final: what was delivered
    assert done.lack_length_ms == 500


def test_advance_does_not_change_its_input() -> None:
    status = run(*MEDIA_FLOW[:4])
    snapshot = orjson.dumps(status.to_dict())
    advance(status, MEDIA_FLOW[4])
    advance(status, MEDIA_FLOW[6])
    assert orjson.dumps(status.to_dict()) == snapshot


def test_an_update_for_another_job_is_refused() -> None:
    status = run(MEDIA_FLOW[0])
    other = StatusEvent(job_id="F" * 32, state="resolving", at_ms=T0)
    with pytest.raises(InvalidRequest) as info:
        advance(status, other)
    assert info.value.field == "job_id"


def test_thumbnail_kind_comes_from_the_first_update() -> None:
    status = run(upd("accepted", 0, kind="thumbnail"), upd("grabbing", 10, progress=0.5))
    assert status.kind == "thumbnail"
    assert 0.3 < status.progress < 0.8


# --- (de)serialisation -------------------------------------------------------------------


def test_status_and_update_round_trip_through_json() -> None:
    status = run(*MEDIA_FLOW)
    assert JobStatus.from_dict(orjson.loads(orjson.dumps(status.to_dict()))) == status
    for u in MEDIA_FLOW:
        assert schemas.decode(schemas.STATUS, schemas.encode(schemas.STATUS, u)) == u
    # unknown keys (a newer schema) are ignored
    assert JobStatus.from_dict({**status.to_dict(), "future": 1}) == status


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"job_id": "x", "state": "done", "at_ms": 1}, "job_id"),
        ({"job_id": JOB, "state": "finished", "at_ms": 1}, "state"),
        ({"job_id": JOB, "state": "done", "at_ms": "1"}, "at_ms"),
        ({"job_id": JOB, "state": "done"}, "at_ms"),
        ({"job_id": JOB, "state": "done", "at_ms": 1, "progress": 1.5}, "progress"),
        ({"job_id": JOB, "state": "done", "at_ms": 1, "progress": True}, "progress"),
        ({"job_id": JOB, "state": "done", "at_ms": 1, "kind": "video"}, "kind"),
        ({"job_id": JOB, "state": "done", "at_ms": 1, "lack_length_ms": 1.5}, "lack_length_ms"),
        ({"job_id": JOB, "state": "done", "at_ms": 1, "error": "boom"}, "error"),
    ],
)
def test_bad_status_updates_are_refused(data: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        schemas.convert(schemas.STATUS, data)
    assert info.value.field == field


def test_bad_job_status_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        JobStatus.from_dict({"job_id": JOB, "kind": "media"})
    with pytest.raises(InvalidRequest):
        JobStatus.from_dict({"job_id": JOB, "kind": "media", "state": "nope"})
    with pytest.raises(InvalidRequest):
        JobStatus.from_dict({"job_id": JOB, "kind": "media", "state": "done", "stages": [1]})


@pytest.mark.parametrize(
    "error",
    [
        SourceNotFound("no such object: s3://b/k.mpd", obj="s3://b/k.mpd"),
        InvalidRequest("Duration 0 ms must be positive", field="Duration"),
        errors.RangeNotInArchive("range after the archive end", field="StartPos"),
        Unauthorized("SessionId is not valid", field="SessionId"),
        Overloaded("too many transcodes", obj="worker-1"),
        MediaError("corrupt segment", obj="seg-3.m4s"),
        StorageFailure("S3 SlowDown", obj="s3://b/k"),
        ExportError("unexpected"),
    ],
)
def test_errors_survive_the_status_table(error: ExportError) -> None:
    again = error_from_dict(orjson.loads(orjson.dumps(error.to_dict())))
    assert type(again) is type(error)
    assert again.code == error.code
    assert str(again) == str(error)
    assert (again.field, again.obj) == (error.field, error.obj)


def test_unknown_error_type_keeps_its_code() -> None:
    again = error_from_dict({"type": "KafkaTimeout", "code": -7, "message": "broker gone"})
    assert again.code == -7 and "broker gone" in str(again)
    assert isinstance(error_from_dict({"type": "X", "code": -4, "message": "m"}), Overloaded)
