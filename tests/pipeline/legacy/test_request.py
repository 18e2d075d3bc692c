"""A legacy POST body becomes an ExportRequest, or an error named as the body calls it
(pipeline/legacy/request.py)."""

from __future__ import annotations

import base64
import copy
import logging
import os
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

import schemas
from pipeline.archive import archive_manifest
from pipeline.auth import OpenSessions, StaticSessions, session_check_for
from pipeline.errors import ExportError, InvalidRequest, Unauthorized
from pipeline.identity import identity_document, job_id_of
from pipeline.legacy.request import normalize_live_path
from pipeline.settings import Settings
from schemas.request import ArchiveSource
from tests.pipeline.legacy.bodies import (
    LIVE_PATH,
    NOW,
    SESSION,
    SLUG,
    STORAGE,
    b64,
    job,
    media_body,
    parse,
    thumb_body,
)

# --- the happy paths ---------------------------------------------------------------------


def test_media_example_becomes_a_complete_request(settings: Settings) -> None:
    req = parse(media_body(), settings)
    assert re.fullmatch(r"[0-9A-F]{32}", req.job_id)
    assert req.kind == "media"
    assert req.live_path == LIVE_PATH
    assert (req.start_pos_ms, req.start_time, req.duration_ms) == (1562253612833, "00:13:12", 9000)
    assert req.export_type == 1
    assert req.file_name == "04-60C262253621833_0.0993375889"
    assert (req.service_caller, req.user_id, req.peer_id) == (
        "mma",
        "dev@tvunetworks.com",
        "4D7446C8141EE167",
    )
    assert req.story == schemas.Story(
        id="4B999DC458FBC4C800000000", name="04-60C262253621833_0.0993375889"
    )
    assert req.slug == SLUG
    assert req.source == ArchiveSource(bucket="mma-video-archive", region="us-west-1")
    assert archive_manifest(req.source, req.live_path, settings) == (
        f"s3://mma-video-archive/{LIVE_PATH}"
    )
    name = "04-60C262253621833_0.0993375889"
    assert req.image_key == f"export/{req.job_id}/{name}.jpg"
    assert req.video_key == f"export/{req.job_id}/{name}.mp4"
    assert req.submitted_at_ms == NOW
    rng = req.range()
    assert (rng.start_pos_ms, rng.start_time_s, rng.duration_ms) == (1562253612833, 792.0, 9000)


def test_thumbnail_example_resolves_against_the_default_archive(settings: Settings) -> None:
    req = parse(thumb_body(), settings)
    assert req.kind == "thumbnail"
    assert req.video_key is None
    assert req.image_key == f"export/{req.job_id}/04-60C262253621833_0.0993375889.jpg"
    assert req.export_type == 0  # the default
    expected = os.path.join(os.path.abspath(settings.archive_url), *LIVE_PATH.split("/"))
    assert req.source == ArchiveSource()  # the default archive: no local path in the event
    assert archive_manifest(req.source, req.live_path, settings) == expected


def test_default_archive_in_s3(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, archive_url="s3://arch/rec", s3_region="eu-west-1")
    req = parse(thumb_body(), s)
    assert req.source == ArchiveSource()
    assert archive_manifest(req.source, req.live_path, s) == f"s3://arch/rec/{LIVE_PATH}"


def test_fetch_media_defaults_to_false(settings: Settings) -> None:
    body = thumb_body()
    del body["FetchMedia"], body["FetchThumb"]
    assert parse(body, settings).kind == "thumbnail"


def test_request_round_trips_through_json(settings: Settings) -> None:
    for body in (media_body(), thumb_body()):
        req = parse(body, settings)
        again = schemas.decode(schemas.REQUESTS, orjson.dumps(req.to_dict()))
        assert again == req


def test_credentials_never_travel(settings: Settings) -> None:
    req = parse(media_body(), settings)
    assert SESSION not in orjson.dumps(req.to_dict()).decode()
    assert SESSION not in repr(req)
    assert "SessionId" not in req.to_dict()


# --- job identity ------------------------------------------------------------------------


def test_same_body_same_job_whatever_the_key_order(settings: Settings) -> None:
    body = media_body()
    reordered = dict(reversed(list(body.items())))
    assert job(body, settings) == job(copy.deepcopy(body), settings) == job(reordered, settings)


@pytest.mark.parametrize(
    "change",
    [
        {"userid": "someone@else"},
        {"SessionId": "ANOTHER-SESSION"},
        {"PeerId": "FFFF"},
        {"_Version": 2},
        {"_ServiceName": "x"},
        {"ServiceCaller": "search"},
        {"S3Region": "eu-central-1"},
        {"S3Bucket": "other"},
        {"FetchThumb": False},
    ],
)
def test_fields_that_do_not_define_the_output_do_not_change_the_job(
    settings: Settings, change: dict[str, Any]
) -> None:
    assert job(media_body(**change), settings) == job(media_body(), settings)


@pytest.mark.parametrize(
    "change",
    [
        {"LivePath": "mp4/55524C2004E/other/1/stream.mpd"},
        {"StartPos": 1562253612834},
        {"StartTime": "00:13:13"},
        {"Duration": 9001},
        {"export_type": 2},
        {"export_type": 0},
        {"FetchMedia": False},
        {"FileName": "other"},
        {"FileName": None},
        {"story": {"id": "OTHER", "name": "04-60C262253621833_0.0993375889"}},
        {"storage_info": b64([{**STORAGE[1], "storage_name": "mma-other-archive"}])},
        {"storage_info": b64([{**STORAGE[1], "storage_root_folder": "2024"}])},
    ],
)
def test_every_output_defining_field_makes_another_job(
    settings: Settings, change: dict[str, Any]
) -> None:
    assert job(media_body(**change), settings) != job(media_body(), settings)


def test_fetch_thumb_is_ignored_for_identity(settings: Settings) -> None:
    ids = {job(thumb_body(FetchThumb=v), settings) for v in (True, False, None)}
    assert len(ids) == 1


def test_equivalent_spellings_are_the_same_job(settings: Settings) -> None:
    assert job(media_body(StartTime="0:13:12"), settings) == job(media_body(), settings)
    messy = "mp4//55524C2004E/./55524C2041268-6bdb82b53e0a/1/stream.mpd"
    assert job(media_body(LivePath=messy), settings) == job(media_body(), settings)
    assert job(media_body(export_type=1.0), settings) == job(media_body(), settings)


def test_job_id_is_a_stable_hash() -> None:
    kw: dict[str, Any] = {
        "live_path": "mp4/a/stream.mpd",
        "start_pos_ms": 1000,
        "start_time": None,
        "duration_ms": 2000,
        "export_type": 0,
        "kind": "media",
        "file_name": None,
        "story_id": None,
        "bucket": "b",
        "prefix": "",
    }
    first = job_id_of(identity_document(**kw))
    assert first == job_id_of(identity_document(**kw))
    assert re.fullmatch(r"[0-9A-F]{32}", first)
    assert job_id_of(identity_document(**{**kw, "kind": "thumbnail"})) != first
    assert job_id_of(identity_document(**{**kw, "bucket": None})) != first


# --- validation --------------------------------------------------------------------------

GARBAGE_B64 = "not base64 at all!"
NOT_JSON_B64 = base64.b64encode(b"{not json").decode()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"StartPos": "1562253612833"}, "StartPos"),
        ({"StartPos": True}, "StartPos"),
        ({"StartPos": -5}, "StartPos"),
        ({"StartPos": float("inf")}, "StartPos"),
        ({"StartPos": 1e300}, "StartPos"),
        ({"StartPos": None, "StartTime": None}, "StartPos"),
        ({"StartTime": 792}, "StartTime"),
        ({"StartTime": "13 minutes"}, "StartTime"),
        ({"Duration": "9000"}, "Duration"),
        ({"Duration": None}, "Duration"),
        ({"Duration": 0}, "Duration"),
        ({"Duration": -1000}, "Duration"),
        ({"Duration": 25 * 3600 * 1000}, "Duration"),
        ({"Duration": [9000]}, "Duration"),
        ({"LivePath": None}, "LivePath"),
        ({"LivePath": ""}, "LivePath"),
        ({"LivePath": 5}, "LivePath"),
        ({"LivePath": "/etc/passwd"}, "LivePath"),
        ({"LivePath": "../secret/stream.mpd"}, "LivePath"),
        ({"LivePath": "mp4/../../etc/passwd"}, "LivePath"),
        ({"LivePath": "mp4/a/.."}, "LivePath"),
        ({"LivePath": "s3://other-bucket/key.mpd"}, "LivePath"),
        ({"LivePath": "file:///etc/passwd"}, "LivePath"),
        ({"LivePath": "C:/archive/stream.mpd"}, "LivePath"),
        ({"LivePath": "mp4\\..\\..\\etc"}, "LivePath"),
        ({"LivePath": "mp4/a\x00b"}, "LivePath"),
        ({"LivePath": "~root/x"}, "LivePath"),
        ({"LivePath": "./"}, "LivePath"),
        ({"LivePath": "mp4/" + "a" * 2000}, "LivePath"),
        ({"export_type": 3}, "export_type"),
        ({"export_type": -1}, "export_type"),
        ({"export_type": "1"}, "export_type"),
        ({"export_type": True}, "export_type"),
        ({"export_type": 1.5}, "export_type"),
        ({"FetchMedia": "true"}, "FetchMedia"),
        ({"FetchMedia": 1}, "FetchMedia"),
        ({"FetchThumb": "yes"}, "FetchThumb"),
        ({"FileName": 5}, "FileName"),
        ({"FileName": "x" * 300}, "FileName"),
        ({"ServiceCaller": ["mma"]}, "ServiceCaller"),
        ({"userid": 42}, "userid"),
        ({"PeerId": {"id": 1}}, "PeerId"),
        ({"S3Bucket": 5}, "S3Bucket"),
        ({"S3Region": False}, "S3Region"),
        ({"storage_info": 5}, "storage_info"),
        ({"storage_info": GARBAGE_B64}, "storage_info"),
        ({"storage_info": NOT_JSON_B64}, "storage_info"),
        ({"storage_info": b64(42)}, "storage_info"),
        ({"storage_info": b64(["mp4"])}, "storage_info"),
        ({"storage_info": b64([STORAGE[0]])}, "storage_info"),  # no "mp4" entry
        ({"storage_info": b64([{**STORAGE[1], "storage_enable": False}])}, "storage_info"),
        ({"storage_info": b64([{**STORAGE[1], "storage_type": "OSS"}])}, "storage_info"),
        ({"storage_info": b64([{**STORAGE[1], "storage_name": "a/b"}])}, "storage_info"),
        ({"storage_info": b64([{**STORAGE[1], "storage_name": None}])}, "storage_info"),
        ({"storage_info": b64([{**STORAGE[1], "storage_location": "Mars 1"}])}, "storage_info"),
        ({"storage_info": b64([{**STORAGE[1], "storage_root_folder": "a/../b"}])}, "storage_info"),
        ({"storage_info": b64([{**STORAGE[1], "storage_root_folder": 7}])}, "storage_info"),
        ({"storage_info": "QQ" * 40000}, "storage_info"),
        ({"story": "4B999DC458FBC4C800000000"}, "story"),
        ({"story": {"id": 5}}, "story.id"),
        ({"story": {"name": ["x"]}}, "story.name"),
        ({"story": {"id": "S", "slug_info": GARBAGE_B64}}, "story.slug_info"),
        ({"story": {"id": "S", "slug_info": NOT_JSON_B64}}, "story.slug_info"),
        ({"story": {"id": "S", "slug_info": b64(["a", "list"])}}, "story.slug_info"),
        ({"story": {"id": "S", "slug_info": 12}}, "story.slug_info"),
    ],
)
def test_each_bad_field_is_named(settings: Settings, change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse(media_body(**change), settings)
    assert info.value.field == field
    assert field in info.value.message  # the message itself names it, not only the suffix
    assert info.value.code == -2
    assert SESSION not in str(info.value)


def test_a_body_that_is_not_an_object_is_refused(settings: Settings) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse([media_body()], settings)
    assert info.value.field == "body"


def test_start_time_alone_is_enough(settings: Settings) -> None:
    req = parse(media_body(StartPos=None), settings)
    assert req.start_pos_ms is None and req.range().start_time_s == 792.0


def test_integral_float_export_type_is_accepted(settings: Settings) -> None:
    assert parse(media_body(export_type=2.0), settings).export_type == 2


def test_normalize_live_path() -> None:
    assert normalize_live_path("mp4//a/./b/stream.mpd") == "mp4/a/b/stream.mpd"
    with pytest.raises(InvalidRequest):
        normalize_live_path("mp4/a/../../b")


def test_an_event_is_held_to_the_same_rules(settings: Settings) -> None:
    good = parse(media_body(), settings).to_dict()
    for key, value, field in [
        ("job_id", "abc", "job_id"),
        ("job_id", "0" * 32, "job_id"),  # the right form, but not this request's JobId
        ("kind", "video", "kind"),
        ("live_path", "../x", "live_path"),
        ("duration_ms", 0, "duration_ms"),
        ("duration_ms", 0.5, "duration_ms"),
        ("start_pos_ms", "1", "start_pos_ms"),
        ("export_type", 7, "export_type"),
        ("video_key", None, "video_key"),
        ("image_key", "../../../pwn/x.jpg", "image_key"),
        ("source", {"bucket": "b/../c"}, "source.bucket"),
        ("source", {"manifest": "/etc/stream.mpd"}, "source"),  # no local paths in events
        ("source", {"bucket": "bb", "prefix": "../up"}, "source.prefix"),
        ("story", "x", "story"),
        ("slug", _deep(300), "slug"),  # deeper than any JSON encoder goes
        ("submitted_at_ms", None, "submitted_at_ms"),
    ]:
        with pytest.raises(InvalidRequest) as info:
            schemas.convert(schemas.REQUESTS, {**good, key: value})
        assert info.value.field == field, key
    with pytest.raises(InvalidRequest):
        schemas.convert(schemas.REQUESTS, [good])


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"x": value}
    return value


# --- SessionId ---------------------------------------------------------------------------


def test_static_session_check(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, session_ids=frozenset({SESSION}))
    assert parse(media_body(), s).kind == "media"
    for body, exc in [
        (media_body(SessionId="WRONG-SESSION-ID"), Unauthorized),
        (media_body(SessionId=None), Unauthorized),
        (media_body(SessionId=""), Unauthorized),
        (media_body(SessionId=12345), InvalidRequest),
    ]:
        with pytest.raises(exc) as info:
            parse(body, s)
        assert info.value.field == "SessionId"
        assert "WRONG" not in str(info.value) and SESSION not in str(info.value)
    without = media_body()
    del without["SessionId"]
    with pytest.raises(Unauthorized):
        parse(without, s)


def test_session_is_checked_before_the_fields(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, session_ids=frozenset({SESSION}))
    with pytest.raises(Unauthorized):
        parse(media_body(SessionId="nope", Duration="bad"), s)


def test_open_check_accepts_anything_but_says_so(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    body = media_body()
    del body["SessionId"]
    assert parse(body, settings).kind == "media"
    with caplog.at_level(logging.INFO):
        check = session_check_for(settings, logger=logging.getLogger("test.auth"))
    assert isinstance(check, OpenSessions)
    assert caplog.records[-1].levelno == logging.WARNING
    assert "OPEN" in caplog.records[-1].getMessage()
    assert "EXPORT_SESSION_IDS" in caplog.records[-1].getMessage()


def test_static_check_announces_itself_without_ids(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = Settings(data_dir=tmp_path, session_ids=frozenset({SESSION, "second"}))
    with caplog.at_level(logging.INFO):
        check = session_check_for(s, logger=logging.getLogger("test.auth"))
    assert isinstance(check, StaticSessions)
    assert caplog.records[-1].levelno == logging.INFO
    assert "2 configured" in caplog.records[-1].getMessage()
    assert SESSION not in caplog.text and SESSION not in repr(check)


def test_an_explicit_session_check_is_used(settings: Settings) -> None:
    class DenyAll:
        name = "deny"

        def check(self, session_id: object) -> None:
            raise Unauthorized("denied", field="SessionId")

        def startup_message(self) -> str:
            return "deny"

    with pytest.raises(Unauthorized):
        parse(media_body(), settings, sessions=DenyAll())


def test_static_sessions_needs_ids() -> None:
    with pytest.raises(ValueError):
        StaticSessions([])


def test_every_error_is_an_export_error(settings: Settings) -> None:
    with pytest.raises(ExportError):
        parse(media_body(LivePath="../x"), settings)


def test_open_check_still_refuses_a_non_string_session_id(settings: Settings) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse(media_body(SessionId=["a", "list"]), settings)
    assert info.value.field == "SessionId"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"Duration": 0.5}, "Duration"),
        ({"Duration": 1500.5}, "Duration"),
        ({"StartPos": 1562253612833.5}, "StartPos"),
        ({"story": {"id": "S", "slug_info": b64(_deep(253))}}, "story.slug_info"),
        ({"story": {"id": "S", "slug_info": b64(_deep(17))}}, "story.slug_info"),
        ({"story": {"id": "S" * 300}}, "story.id"),
        ({"story": {"name": "a\x00b"}}, "story.name"),
        ({"FileName": "a\nb"}, "FileName"),
    ],
)
def test_the_body_is_held_to_the_event_rules(
    settings: Settings, change: dict[str, Any], field: str
) -> None:
    """What a direct event may not carry, a body may not either (one definition)."""
    with pytest.raises(InvalidRequest) as info:
        parse(media_body(**change), settings)
    assert info.value.field == field
    assert field in info.value.message


def test_whole_numbers_sent_as_floats_are_the_same_job(settings: Settings) -> None:
    assert job(media_body(Duration=9000.0), settings) == job(media_body(), settings)
