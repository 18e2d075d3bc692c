"""Every topic's JSON Schema is valid and accepts the events the stages build; the Records
round-trip; decode() names the offending field."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

import schemas
from agents.deadletter import dead_letter_event
from pipeline import stages
from pipeline.errors import MediaError
from pipeline.legacy.request import parse_export_body
from pipeline.settings import Settings

JOB = "0123456789ABCDEF0123456789ABCDEF"


def _request(tmp_path: Path, **fields: Any) -> Any:
    settings = Settings(data_dir=tmp_path)
    body = {
        "StartPos": 1_562_253_612_833,
        "Duration": 9000,
        "LivePath": "mp4/a/1/stream.mpd",
        "FetchMedia": True,
        "export_type": 1,
        "FileName": "x.mp4",
        "story": {"id": "S", "name": "n"},
    }
    body.update(fields)
    return parse_export_body(body, settings, now_ms=5)


def samples(tmp_path: Path) -> dict[str, list[dict[str, Any]]]:
    req = _request(tmp_path)
    assert req.video_key is not None
    art = schemas.Artifact(
        role="video",
        staging_key=f"staging/{req.job_id}/video.mp4",
        final_key=req.video_key,
        content_type="video/mp4",
        size=10,
        sha256="0" * 64,
        facts={"duration": 9.0},
    )
    upload = stages.upload_task(
        req, artifacts=[art], delivered_ms=9000, timings={"transcode": {"start_ms": 1, "end_ms": 2}}
    )
    failed = stages.upload_task(req, error=MediaError("bad", obj="seg.m4s"))
    task = {
        "schema_version": 2,
        "job_id": req.job_id,
        "request": req.to_dict(),
        "lack_length_ms": 0,
        "live_waited_ms": 0,
        "timings": {},
    }
    completed = {
        "schema_version": 2,
        "job_id": req.job_id,
        "outcome": "ok",
        "request": req.to_dict(),
        "completed_at_ms": 9,
        "outputs": {
            "image": None,
            "video": {
                "key": req.video_key,
                "location": "/x",
                "size": 1,
                "sha256": "0" * 64,
                "facts": {},
            },
        },
        "gaps": [{"start": 1.0, "end": 2.0, "reason": "gap"}],
        "story": req.story,
        "slug": None,
    }
    return {
        schemas.REQUESTS: [
            req.to_dict(),
            _request(tmp_path, FetchMedia=False).to_dict(),
        ],
        schemas.FRAMES: [task],
        schemas.TRANSCODES: [task],
        schemas.UPLOADS: [upload, failed],
        schemas.STATUS: [
            stages.status_event(JOB, "accepted", at_ms=1, kind="media"),
            stages.status_event(JOB, "waiting_live", at_ms=2, lack_length_ms=300),
            stages.status_event(JOB, "failed", at_ms=3, error=MediaError("x").to_dict()),
        ],
        schemas.COMPLETED: [completed],
        schemas.DEADLETTER: [
            dead_letter_event(
                schemas.REQUESTS, b"\x00junk", "not JSON", key=JOB.encode(), partition=1, offset=7
            )
        ],
    }


def _file_validator(topic: str) -> Any:
    from jsonschema import Draft202012Validator

    doc = json.loads(schemas.schema_path(topic).read_text())
    Draft202012Validator.check_schema(doc)
    return Draft202012Validator(doc)


def test_every_topic_has_a_valid_schema_file() -> None:
    for topic in schemas.TOPICS:
        _file_validator(topic)


def test_the_checked_in_schema_files_are_generated_from_the_definitions() -> None:
    from schemas.generate import render

    for topic in schemas.TOPICS:
        assert schemas.schema_path(topic).read_text() == render(topic), (
            f"{topic}: run `python -m schemas.generate`"
        )


def test_sample_events_validate_and_round_trip(tmp_path: Path) -> None:
    for topic, events in samples(tmp_path).items():
        for event in events:
            raw = schemas.encode(topic, event)
            assert not list(_file_validator(topic).iter_errors(json.loads(raw)))
            record = schemas.decode(topic, raw)
            assert isinstance(record, schemas.TYPES[topic])
            again = msgspec.to_builtins(record)
            assert again == {**again, **json.loads(raw)}  # nothing lost or changed
            assert again["schema_version"] == schemas.SCHEMA_VERSION


def test_the_schema_file_refuses_what_the_service_refuses(tmp_path: Path) -> None:
    """The file states the rules: an event the service refuses fails the file too."""
    good = _request(tmp_path).to_dict()
    bad = [
        {**good, "video_key": None},  # a media request needs its video key
        {**good, "duration_ms": 0.5},
        {**good, "live_path": "../../etc/stream.mpd"},
        {**good, "image_key": "../../../pwn/x.jpg"},
        {**good, "source": {"bucket": "bb", "prefix": "a/../../b"}},
        {**good, "start_pos_ms": None, "start_time": None},
    ]
    for event in bad:
        assert list(_file_validator(schemas.REQUESTS).iter_errors(event)), event
        with pytest.raises(schemas.InvalidEvent):
            schemas.convert(schemas.REQUESTS, event)


@pytest.mark.parametrize(
    ("topic", "raw", "field"),
    [
        (schemas.REQUESTS, b"{nope", None),
        (schemas.REQUESTS, b'{"schema_version": 2, "job_id": "x"}', "job_id"),
        (
            schemas.STATUS,
            b'{"schema_version": 1, "job_id": "'
            + JOB.encode()
            + b'", "state": "done", "at_ms": 1}',
            "schema_version",
        ),
        (
            schemas.STATUS,
            b'{"schema_version": 2, "job_id": "'
            + JOB.encode()
            + b'", "state": "exploded", "at_ms": 1}',
            "state",
        ),
        (schemas.STATUS, b'{"a":' * 3000 + b"1" + b"}" * 3000, None),
    ],
)
def test_decode_rejects_with_the_field(topic: str, raw: bytes, field: str | None) -> None:
    with pytest.raises(schemas.InvalidEvent) as info:
        schemas.decode(topic, raw)
    assert info.value.field == field
    assert str(info.value).startswith(topic)


def test_dead_letter_keeps_the_original_bytes() -> None:
    event = dead_letter_event(schemas.UPLOADS, b"\xff\xfe", "why", key=None)
    schemas.convert(schemas.DEADLETTER, event)
    assert base64.b64decode(event["original_b64"]) == b"\xff\xfe"


@pytest.mark.parametrize(
    ("topic", "event"),
    [
        (schemas.STATUS, {"job_id": JOB + "\n", "state": "done", "at_ms": 1}),
        (schemas.STATUS, {"job_id": JOB.lower(), "state": "done", "at_ms": 1}),
    ],
)
def test_a_job_id_is_exactly_32_upper_case_hex_digits(topic: str, event: dict[str, Any]) -> None:
    # Python's "$" also matches before a final newline: the length bound closes that.
    with pytest.raises(schemas.InvalidEvent) as info:
        schemas.convert(topic, event)
    assert info.value.field == "job_id"
