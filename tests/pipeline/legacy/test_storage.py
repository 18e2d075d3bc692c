"""storage_info (or the deprecated S3Bucket) chooses the archive a job reads
(pipeline/legacy/storage.py)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.archive import archive_manifest
from pipeline.errors import Unauthorized
from pipeline.legacy.storage import decode_storage_info
from pipeline.settings import Settings
from schemas.request import ArchiveSource
from tests.pipeline.legacy.bodies import LIVE_PATH, STORAGE, b64, media_body, parse


def test_storage_entry_is_chosen_by_live_path_first_element(settings: Settings) -> None:
    req = parse(media_body(LivePath="ts/peer/1/index.m3u8"), settings)
    assert req.source == ArchiveSource(bucket="mma-ts-archive", region="us-east-2")
    assert archive_manifest(req.source, req.live_path, settings) == (
        "s3://mma-ts-archive/ts/peer/1/index.m3u8"
    )


def test_disabled_entries_are_skipped_and_root_folder_prefixes(settings: Settings) -> None:
    entries = [
        {**STORAGE[1], "storage_enable": False, "storage_name": "disabled-bucket"},
        {**STORAGE[1], "storage_root_folder": "/recordings/2024/", "storage_location": ""},
    ]
    req = parse(media_body(storage_info=b64(entries)), settings)
    assert archive_manifest(req.source, req.live_path, settings) == (
        f"s3://mma-video-archive/recordings/2024/{LIVE_PATH}"
    )
    assert req.source.region is None


@pytest.mark.parametrize(
    "encode",
    [
        lambda raw: base64.urlsafe_b64encode(raw).decode().rstrip("="),
        lambda raw: base64.encodebytes(raw).decode(),  # wrapped at 76 characters
        lambda raw: base64.b64encode(b"\xef\xbb\xbf" + raw).decode(),  # UTF-8 BOM
    ],
)
def test_storage_info_base64_variants(settings: Settings, encode: Any) -> None:
    raw = orjson.dumps(STORAGE * 3)
    req = parse(media_body(storage_info=encode(raw)), settings)
    assert req.source.bucket == "mma-video-archive"


def test_storage_info_may_be_an_already_decoded_list(settings: Settings) -> None:
    assert decode_storage_info(STORAGE) == STORAGE
    assert parse(media_body(storage_info=STORAGE), settings).source.bucket == "mma-video-archive"


def test_bucket_outside_the_allow_list_is_unauthorized(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, allowed_buckets=frozenset({"mma-ts-archive"}))
    with pytest.raises(Unauthorized) as info:
        parse(media_body(), s)
    assert info.value.code == -3
    assert info.value.field == "storage_info"
    assert "mma-video-archive" in info.value.message
    ok = Settings(data_dir=tmp_path, allowed_buckets=frozenset({"mma-video-archive"}))
    assert parse(media_body(), ok).source.bucket == "mma-video-archive"


def test_deprecated_s3_bucket_is_ignored_unless_allowed(tmp_path: Path) -> None:
    body = media_body(storage_info=None)
    open_settings = Settings(data_dir=tmp_path)
    assert parse(body, open_settings).source.bucket is None  # no allow-list: not trusted
    other = Settings(data_dir=tmp_path, allowed_buckets=frozenset({"something-else"}))
    assert parse(body, other).source.bucket is None
    allowed = Settings(data_dir=tmp_path, allowed_buckets=frozenset({"imgbed"}))
    assert parse(body, allowed).source == ArchiveSource(bucket="imgbed", region="ap-northeast-1")
    # storage_info wins over S3Bucket when both are given
    both = Settings(data_dir=tmp_path, allowed_buckets=frozenset({"imgbed", "mma-video-archive"}))
    assert parse(media_body(), both).source.bucket == "mma-video-archive"


def test_empty_storage_info_means_absent(settings: Settings) -> None:
    assert parse(media_body(storage_info=""), settings).source.bucket is None
