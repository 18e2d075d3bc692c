"""The contract's example bodies (/work/shared/api/export-api.md), with real base64 payloads
built from the storage_info and slug_info the contract shows: the OpenAPI document's examples,
and what the tests post."""

from __future__ import annotations

import base64
from typing import Any

import orjson

STORAGE = [
    {
        "storage_purpose": purpose,
        "storage_type": "S3",
        "storage_enable": True,
        "storage_name": "mma-video-archive",
        "storage_location": "us-west-1",
        "storage_description": "",
        "storage_root_folder": "",
    }
    for purpose in ("ts", "mp4")
]
SLUG = {
    "slug_id": "abcdefghig",
    "slug_name": "test",
    "slug_date": "",
    "clipped_date": "",
    "clip_length": "",
}


def b64(value: object) -> str:
    return base64.b64encode(orjson.dumps(value)).decode()


THUMBNAIL_EXAMPLE: dict[str, Any] = {
    "_ServiceName": "resourceservice",
    "_UrlPath": "export",
    "_Version": 1,
    "StartPos": 1562253612833,
    "StartTime": "00:13:12",
    "Duration": 9000,
    "PeerId": "4D7446C8141EE167",
    "LivePath": "mp4/55524C2004E/55524C2041268-6bdb82b53e0a/1/stream.mpd",
    "FileName": "04-60C262253621833_0.0993375889",
    "SessionId": "2A39603DDB0F47CFB32E96C8366084AE",
    "FetchMedia": False,
    "FetchThumb": True,
    "userid": "dev@tvunetworks.com",
}
MEDIA_EXAMPLE: dict[str, Any] = {
    **{k: v for k, v in THUMBNAIL_EXAMPLE.items() if k != "FetchThumb"},
    "ServiceCaller": "mma",
    "export_type": 1,
    "FetchMedia": True,
    "S3Region": "ap-northeast-1",
    "S3Bucket": "imgbed",
    "storage_info": b64(STORAGE),
    "story": {
        "id": "4B999DC458FBC4C800000000",
        "name": "04-60C262253621833_0.0993375889",
        "slug_info": b64(SLUG),
    },
}
