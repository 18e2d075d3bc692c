from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest

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
from pipeline.jobs import (
    STATES,
    JobStatus,
    StatusUpdate,
    accepted_update,
    advance,
    error_from_dict,
    estimate_time_wait_ms,
    failed_update,
    legacy_image_path,
    legacy_response,
    legacy_video_path,
    output_keys,
    output_name,
)
from pipeline.legacy import ExportRequest, parse_export_body
from pipeline.settings import Settings

JOB = "0123456789ABCDEF0123456789ABCDEF"
T0 = 1_700_000_000_000
RANK = {s: i for i, s in enumerate(STATES)} | {"failed": len(STATES) - 2}


def upd(state: str, at: int, **kw: Any) -> StatusUpdate:
    return StatusUpdate(job_id=JOB, state=state, at_ms=T0 + at, **kw)  # type: ignore[arg-type]


def run(*updates: StatusUpdate) -> JobStatus:
    status: JobStatus | None = None
    for u in updates:
        status = advance(status, u)
    assert status is not None
    return status


def make_request(tmp_path: Path, *, media: bool, file_name: str | None = "clip") -> ExportRequest:
    body: dict[str, Any] = {
        "StartPos": 1562253612833,
        "Duration": 9000,
        "LivePath": "mp4/peer/1/stream.mpd",
        "FetchMedia": media,
        "FileName": file_name,
        "SessionId": "SECRET-SESSION-1234",
    }
    return parse_export_body(body, Settings(data_dir=tmp_path, worker_id="t"), now_ms=T0)


MEDIA_FLOW = [
    upd("accepted", 0, kind="media", progress=0.0, image_key=f"export/{JOB}/c.jpg",
        video_key=f"export/{JOB}/c.mp4"),
    upd("resolving", 10),
    upd("resolving", 20, progress=1.0, lack_length_ms=0),
    upd("transcoding", 30, progress=0.0),
    upd("transcoding", 1030, progress=0.25),
    upd("transcoding", 2030, progress=0.5),
    upd("grabbing", 2040, stage="grab", stage_start_ms=T0 + 2040, stage_end_ms=T0 + 2300),
    upd("transcoding", 4030, progress=1.0),
    upd("uploading", 4040, progress=0.0),
    upd("uploading", 4100, progress=1.0),
    upd("done", 4200, lack_length_ms=0),
]  # fmt: skip


# --- output keys and paths ---------------------------------------------------------------


def test_output_keys_follow_the_contract() -> None:
    assert output_keys(JOB, "media", "clip.ts") == (
        f"export/{JOB}/clip.jpg",
        f"export/{JOB}/clip.ts",
    )
    assert output_keys(JOB, "media", None) == (f"export/{JOB}/{JOB}.jpg", f"export/{JOB}/{JOB}.mp4")
    assert output_keys(JOB, "thumbnail", "x.mp4") == (f"export/{JOB}/x.jpg", None)
    assert legacy_image_path(f"export/{JOB}/x.jpg") == f"/{JOB}/x.jpg"
    assert legacy_video_path(f"export/{JOB}/x.mp4") == f"/export/{JOB}/x.mp4"


@pytest.mark.parametrize(
    ("file_name", "expected"),
    [
        ("04-60C262253621833_0.0993375889", ("04-60C262253621833_0.0993375889", ".mp4")),
        ("a b:c*d?.MP4", ("a_b_c_d", ".mp4")),
        ("..", (JOB, ".mp4")),
        ("/abs/path/x.ts", ("abs_path_x", ".ts")),
        ("y" * 400, ("y" * 150, ".mp4")),
    ],
)
def test_output_name(file_name: str, expected: tuple[str, str]) -> None:
    assert output_name(file_name, JOB) == expected


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
    assert final.image_path == f"/{JOB}/c.jpg"
    assert final.video_path == f"/export/{JOB}/c.mp4"
    assert final.stages["transcoding"] == {"start_ms": T0 + 30, "end_ms": T0 + 4040}
    assert final.stages["grab"] == {"start_ms": T0 + 2040, "end_ms": T0 + 2300}
    assert final.stages["uploading"] == {"start_ms": T0 + 4040, "end_ms": T0 + 4200}
    assert final.created_at_ms == T0 and final.updated_at_ms == T0 + 4200


def test_progress_is_banded_per_state() -> None:
    mid = run(*MEDIA_FLOW[:6])  # transcoding at 50 %
    assert mid.state == "transcoding" and mid.state_progress == 0.5
    assert 0.15 < mid.progress < 0.9


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
    other = StatusUpdate(job_id="F" * 32, state="resolving", at_ms=T0)
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
        assert StatusUpdate.from_dict(orjson.loads(orjson.dumps(u.to_dict()))) == u
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
        StatusUpdate.from_dict(data)
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


# --- TimeWait ----------------------------------------------------------------------------


def test_time_wait_from_progress_and_elapsed_time() -> None:
    status = run(MEDIA_FLOW[0], upd("transcoding", 1000, progress=0.0))
    status = advance(status, upd("transcoding", 2000, progress=0.5))
    # 2 s spent for half the work: about 2 s left
    assert estimate_time_wait_ms(status, kind="media", now_ms=T0 + 3000) == 2000
    assert estimate_time_wait_ms(status, kind="media", now_ms=T0 + 1200) == 500  # clamped
    slow = advance(status, upd("transcoding", 2001, progress=0.51))
    assert estimate_time_wait_ms(slow, kind="media", now_ms=T0 + 100_000) == 5000  # clamped


def test_time_wait_without_progress_is_a_default() -> None:
    assert estimate_time_wait_ms(None, kind="media", now_ms=T0) == 2000
    assert estimate_time_wait_ms(None, kind="thumbnail", now_ms=T0) == 1000
    status = run(MEDIA_FLOW[0], upd("resolving", 10))
    assert estimate_time_wait_ms(status, kind="media", now_ms=T0 + 50) == 2000


@pytest.mark.parametrize(("lack", "wait"), [(3000, 3000), (60_000, 5000), (100, 500)])
def test_time_wait_while_waiting_for_the_live_edge_follows_the_missing_time(
    lack: int, wait: int
) -> None:
    status = run(MEDIA_FLOW[0], upd("waiting_live", 10, lack_length_ms=lack))
    assert estimate_time_wait_ms(status, kind="media", now_ms=T0 + 20) == wait


# --- legacy_response ---------------------------------------------------------------------


def test_thumbnail_done_is_error_code_0(tmp_path: Path) -> None:
    req = make_request(tmp_path, media=False)
    status = run_for(req, "grabbing", "uploading", "done")
    assert legacy_response(req, status, now_ms=T0) == {
        "TimeWait": 0,
        "ErrorCode": 0,
        "ErrorMessage": "Success",
        "ImagePath": f"/{req.job_id}/clip.jpg",
        "S3Dir": "export",
        "JobId": req.job_id,
    }


def test_media_done_is_error_code_5(tmp_path: Path) -> None:
    req = make_request(tmp_path, media=True)
    status = run_for(req, "transcoding", "uploading")
    status = advance(status, StatusUpdate(req.job_id, "done", T0 + 900, lack_length_ms=1200))
    assert legacy_response(req, status, now_ms=T0) == {
        "TimeWait": 0,
        "ErrorCode": 5,
        "ErrorMessage": "Success",
        "ImagePath": f"/{req.job_id}/clip.jpg",
        "VideoPath": f"/export/{req.job_id}/clip.mp4",
        "Version": "v1",
        "S3Dir": "export",
        "LackLength": 1200,
        "JobId": req.job_id,
    }
    # a poll by job id alone (GET /export/{job_id}) answers the same from the status
    assert legacy_response(None, status, now_ms=T0) == legacy_response(req, status, now_ms=T0)


def test_running_job_is_error_code_1_with_time_wait_and_lack_length(tmp_path: Path) -> None:
    req = make_request(tmp_path, media=True)
    status = run_for(req, "waiting_live")
    status = advance(
        status, StatusUpdate(req.job_id, "waiting_live", T0 + 150, lack_length_ms=4200)
    )
    body = legacy_response(req, status, now_ms=T0 + 200)
    assert body["ErrorCode"] == 1 and body["ErrorMessage"] == "Work Not Finish"
    assert body["LackLength"] == 4200
    assert body["TimeWait"] == 4200
    assert body["ImagePath"] == f"/{req.job_id}/clip.jpg" and body["S3Dir"] == "export"
    assert body["JobId"] == req.job_id and body["State"] == "waiting_live"
    assert 0.0 <= body["Progress"] < 1.0


def test_just_accepted_job_without_status(tmp_path: Path) -> None:
    req = make_request(tmp_path, media=True)
    body = legacy_response(req, None, now_ms=T0)
    assert body["ErrorCode"] == 1 and body["TimeWait"] == 2000 and body["LackLength"] == 0
    assert body["JobId"] == req.job_id and body["State"] == "accepted"


def test_source_not_found_says_not_such_dir(tmp_path: Path) -> None:
    req = make_request(tmp_path, media=True)
    missing = f"{tmp_path}/archive/{req.live_path}"
    status = advance(
        run_for(req, "resolving"),
        failed_update(
            req.job_id, SourceNotFound(f"no such file: {missing}", obj=missing), now_ms=T0
        ),
    )
    body = legacy_response(req, status, now_ms=T0)
    assert body["ErrorCode"] == -1
    assert body["ErrorMessage"] == "not such dir"
    assert missing in body["ErrorDetail"]
    assert body["JobId"] == req.job_id
    assert body["VideoPath"] == f"/export/{req.job_id}/clip.mp4"  # shape of the contract's example


def test_error_before_any_job_exists(tmp_path: Path) -> None:
    err = InvalidRequest("Duration must be a number (ms), not a string '9'", field="Duration")
    body = legacy_response(None, None, error=err, now_ms=T0)
    assert body == {
        "TimeWait": 0,
        "ErrorCode": -2,
        "ErrorMessage": str(err),
        "ErrorField": "Duration",
        "JobId": "",
    }
    assert "Duration" in body["ErrorMessage"]


def test_overloaded_asks_to_come_back(tmp_path: Path) -> None:
    req = make_request(tmp_path, media=False)
    body = legacy_response(
        req, None, error=Overloaded("queue full", obj="export.requests"), now_ms=T0
    )
    assert body["ErrorCode"] == -4 and body["TimeWait"] == 2000 and body["JobId"] == req.job_id
    assert "VideoPath" not in body  # a thumbnail job has no video


def test_responses_never_carry_the_session_id(tmp_path: Path) -> None:
    req = make_request(tmp_path, media=True)
    for status in (None, run_for(req, "transcoding"), run_for(req, "done")):
        assert (
            "SECRET-SESSION-1234"
            not in orjson.dumps(legacy_response(req, status, now_ms=T0)).decode()
        )


def run_for(req: ExportRequest, *states: str) -> JobStatus:
    status = advance(None, accepted_update(req, now_ms=T0))
    for n, state in enumerate(states, 1):
        status = advance(status, StatusUpdate(req.job_id, state, T0 + 100 * n))  # type: ignore[arg-type]
    return status
