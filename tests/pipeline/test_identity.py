"""A JobId anyone can compute: the README's recipe, pinned by a vector file, and the same
on every deployment whatever its local paths."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.identity import identity_document, job_id_of
from pipeline.legacy.request import parse_export_body
from pipeline.settings import Settings

VECTORS = json.loads((Path(__file__).parent / "job_id_vectors.json").read_text())["vectors"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["job_id"] for v in VECTORS])
def test_each_vector_body_has_its_pinned_job_id(vector: dict[str, Any], tmp_path: Path) -> None:
    req = parse_export_body(vector["body"], Settings(data_dir=tmp_path), now_ms=0)
    assert req.job_id == vector["job_id"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["job_id"] for v in VECTORS])
def test_the_recipe_needs_nothing_but_sha256_over_the_canonical_bytes(
    vector: dict[str, Any],
) -> None:
    # What a producer in another language does: hash the RFC 8785 bytes.
    digest = hashlib.sha256(vector["canonical"].encode()).hexdigest()[:32].upper()
    assert digest == vector["job_id"]
    assert job_id_of(identity_document(**_kwargs(vector["identity"]))) == vector["job_id"]


def test_a_deployment_with_its_data_elsewhere_gives_the_same_job_id(tmp_path: Path) -> None:
    body = VECTORS[1]["body"]
    here = parse_export_body(body, Settings(data_dir=tmp_path / "a"), now_ms=0)
    there = parse_export_body(body, Settings(data_dir=tmp_path / "b" / "c"), now_ms=5)
    assert here.job_id == there.job_id


def _kwargs(doc: dict[str, Any]) -> dict[str, Any]:
    ms = doc["start_time_ms"]
    start_time = None if ms is None else f"{ms // 3_600_000}:{ms // 60_000 % 60}:{ms // 1000 % 60}"
    return {
        "live_path": doc["live_path"],
        "start_pos_ms": doc["start_pos_ms"],
        "start_time": start_time,
        "duration_ms": doc["duration_ms"],
        "export_type": doc["export_type"],
        "kind": doc["kind"],
        "file_name": doc["file_name"],
        "story_id": doc["story_id"],
        "bucket": doc["archive"]["bucket"],
        "prefix": doc["archive"]["prefix"],
    }
