"""The contract's example bodies (/work/shared/api/export-api.md), with real base64
payloads, and the one way the legacy tests parse them."""

from __future__ import annotations

import base64
from typing import Any

import orjson

import schemas
from pipeline.legacy.examples import THUMBNAIL_EXAMPLE
from pipeline.legacy.request import parse_export_body
from pipeline.settings import Settings

NOW = 1_700_000_000_000
SESSION = "2A39603DDB0F47CFB32E96C8366084AE"
LIVE_PATH = "mp4/55524C2004E/55524C2041268-6bdb82b53e0a/1/stream.mpd"
STORAGE = [
    {
        "storage_purpose": "ts",
        "storage_type": "S3",
        "storage_enable": True,
        "storage_name": "mma-ts-archive",
        "storage_location": "us-east-2",
        "storage_description": "",
        "storage_root_folder": "",
    },
    {
        "storage_purpose": "mp4",
        "storage_type": "S3",
        "storage_enable": True,
        "storage_name": "mma-video-archive",
        "storage_location": "us-west-1",
        "storage_description": "",
        "storage_root_folder": "",
    },
]
SLUG = {"slug_id": "abcdefghig", "slug_name": "test", "slug_date": "", "clip_length": ""}


def b64(value: Any) -> str:
    return base64.b64encode(orjson.dumps(value)).decode()


def media_body(**changes: Any) -> dict[str, Any]:
    """The contract's media example, with real base64 payloads."""
    body: dict[str, Any] = {
        "_ServiceName": "resourceservice",
        "_UrlPath": "export",
        "_Version": 1,
        "ServiceCaller": "mma",
        "StartPos": 1562253612833,
        "StartTime": "00:13:12",
        "Duration": 9000,
        "PeerId": "4D7446C8141EE167",
        "LivePath": LIVE_PATH,
        "FileName": "04-60C262253621833_0.0993375889",
        "SessionId": SESSION,
        "export_type": 1,
        "FetchMedia": True,
        "S3Region": "ap-northeast-1",
        "S3Bucket": "imgbed",
        "storage_info": b64(STORAGE),
        "userid": "dev@tvunetworks.com",
        "story": {
            "id": "4B999DC458FBC4C800000000",
            "name": "04-60C262253621833_0.0993375889",
            "slug_info": b64(SLUG),
        },
    }
    body.update(changes)
    return body


def thumb_body(**changes: Any) -> dict[str, Any]:
    """The contract's thumbnail example (no storage_info: the default archive)."""
    return {**THUMBNAIL_EXAMPLE, **changes}


def parse(body: Any, settings: Settings, **kw: Any) -> schemas.ExportRequest:
    return parse_export_body(body, settings, now_ms=NOW, **kw)


def job(body: dict[str, Any], settings: Settings) -> str:
    return parse(body, settings).job_id
