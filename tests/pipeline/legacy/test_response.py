"""A job's status, or an error, becomes the answer the contract promises, byte for byte
(pipeline/legacy/response.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.errors import InvalidRequest, Overloaded, SourceNotFound
from pipeline.jobs import JobStatus, accepted_update, advance, failed_update
from pipeline.legacy.request import parse_export_body
from pipeline.legacy.response import estimate_time_wait_ms, legacy_response
from pipeline.settings import Settings
from schemas import StatusEvent
from schemas.request import ExportRequest
from tests.pipeline.statuses import MEDIA_FLOW, T0, run, upd


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


# --- answers -----------------------------------------------------------------------------


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
    status = advance(
        status, StatusEvent(job_id=req.job_id, state="done", at_ms=T0 + 900, lack_length_ms=1200)
    )
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
        status,
        StatusEvent(job_id=req.job_id, state="waiting_live", at_ms=T0 + 150, lack_length_ms=4200),
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


def test_answers_keep_the_key_order_callers_match_byte_for_byte(tmp_path: Path) -> None:
    req = make_request(tmp_path, media=True)
    failed = legacy_response(req, None, error=SourceNotFound("gone", field="LivePath"), now_ms=T0)
    assert list(failed) == [
        "TimeWait", "ErrorCode", "ErrorMessage", "ErrorDetail", "ErrorField",
        "ImagePath", "S3Dir", "VideoPath", "Version", "LackLength", "JobId",
    ]  # fmt: skip
    running = legacy_response(req, run_for(req, "transcoding"), now_ms=T0)
    assert list(running) == [
        "TimeWait", "ErrorCode", "ErrorMessage", "ImagePath", "S3Dir", "LackLength",
        "State", "Progress", "JobId",
    ]  # fmt: skip
    done = advance(
        run_for(req, "uploading"),
        StatusEvent(job_id=req.job_id, state="done", at_ms=T0 + 900, lack_length_ms=0),
    )
    assert list(legacy_response(req, done, now_ms=T0)) == [
        "TimeWait", "ErrorCode", "ErrorMessage", "ImagePath", "VideoPath", "Version",
        "S3Dir", "LackLength", "JobId",
    ]  # fmt: skip


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
        status = advance(status, StatusEvent(job_id=req.job_id, state=state, at_ms=T0 + 100 * n))  # type: ignore[arg-type]
    return status


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
