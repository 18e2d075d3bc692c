"""The transcode agent on a split clip, without a broker: the fan-out, chunk keys that
spread over the partitions, the join where the last chunk finishes, the status fold."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import schemas
from agents import status, transcode, upload
from agents.chunks import chunk_key
from agents.supervisor import partition_of
from pipeline import stages
from pipeline.legacy.request import parse_export_body
from pipeline.settings import Settings
from pipeline.synthetic import ArchiveSpec, write_dash, write_hls
from tests.agents.fakes import FakePipe, event

SPEC = ArchiveSpec(seconds=10.0)
DASH = "mp4/cam/1/stream.mpd"
HLS = "ts/cam/1/index.m3u8"
JOB = "0123456789ABCDEF0123456789ABCDEF"


@pytest.fixture
def pipe(tmp_path: Path) -> Iterator[FakePipe]:
    archive = tmp_path / "archive"
    write_dash(archive / Path(DASH).parent, SPEC)
    write_hls(archive / Path(HLS).parent, SPEC)
    settings = Settings(
        data_dir=tmp_path / "data",
        archive_url=str(archive),
        output_url=str(tmp_path / "out"),
        split_seconds=3,
        partitions=2,
    )
    p = FakePipe(settings=settings, ctx=stages.StageContext.from_settings(settings))
    yield p
    p.ctx.close()


def _task(pipe: Any, live_path: str) -> dict[str, Any]:
    assert SPEC.epoch_ms is not None
    body = {
        "StartPos": SPEC.epoch_ms + 400,
        "Duration": 9000,
        "LivePath": live_path,
        "FetchMedia": True,
        "export_type": 1,
    }
    req = parse_export_body(body, pipe.settings, now_ms=1)
    return {"job_id": req.job_id, "request": req.to_dict()}


@pytest.mark.parametrize("partitions", [1, 2, 3, 8, 40])
def test_chunk_keys_put_consecutive_chunks_on_consecutive_partitions(partitions: int) -> None:
    first = partition_of(JOB, partitions)
    for i in range(2 * partitions):
        key = chunk_key(JOB, i, partitions)
        assert key.startswith(f"{JOB}/{i}")
        assert partition_of(key, partitions) == (first + i) % partitions


def test_a_chunk_key_names_its_job() -> None:
    # the heartbeat and the failure path find the job of a chunk task by its key
    assert schemas.job_id_hint(b"not json", chunk_key(JOB, 3, 4).encode()) == JOB


def test_a_long_clip_is_split_joined_once_and_reports_chunk_progress(pipe: Any) -> None:
    task = _task(pipe, DASH)
    job = task["job_id"]
    asyncio.run(transcode.split(asyncio.Lock(), pipe, event(schemas.TRANSCODES, task, job)))
    chunks = pipe.sent[schemas.TRANSCODES]
    assert len(chunks) == 4 and not pipe.sent[schemas.UPLOADS]
    spread = Counter(partition_of(key, 2) for key, _ in chunks)
    assert spread == Counter({0: 2, 1: 2})  # as many chunks on each partition
    for key, chunk in reversed(chunks):  # whatever the order, the last one joins
        asyncio.run(transcode.handle(pipe, event(schemas.TRANSCODES, chunk, key)))
    assert len(pipe.sent[schemas.UPLOADS]) == 1
    _, up = pipe.sent[schemas.UPLOADS][0]
    assert {a["role"] for a in up["artifacts"]} == {"image", "video"}
    staged = Path(pipe.settings.output_url) / "staging" / job
    assert len(list(staged.glob("chunks-*/*"))) == 8  # kept until the clip is published
    asyncio.run(upload.handle(pipe, event(schemas.UPLOADS, up, job)))
    assert not [f for f in staged.rglob("*") if f.is_file()]
    key, chunk = chunks[0]  # redelivered after the job completed: nothing is done
    asyncio.run(transcode.handle(pipe, event(schemas.TRANSCODES, chunk, key)))
    # ...also where the job's completed row is not at hand (another worker's partition):
    # the clip at its final key, written since the job was submitted, says it ended
    del pipe.completed[job]
    asyncio.run(transcode.handle(pipe, event(schemas.TRANSCODES, chunk, key)))
    asyncio.run(transcode.split(asyncio.Lock(), pipe, event(schemas.TRANSCODES, task, job)))
    assert len(pipe.sent[schemas.UPLOADS]) == 1 and len(pipe.sent[schemas.TRANSCODES]) == 4
    assert not [f for f in staged.rglob("*") if f.is_file()]
    progress = []
    for k, st in pipe.sent[schemas.STATUS]:
        asyncio.run(status.handle(pipe, event(schemas.STATUS, st, k)))
        row = pipe.status[job]
        if row["state"] == "transcoding":
            progress.append(row["state_progress"])
    assert progress == sorted(progress) and 0.0 < progress[len(progress) // 2] < 1.0
    assert pipe.status[job]["state"] == "done" and pipe.status[job]["chunks"] == 4
    (done,) = [v for v in pipe.sent[schemas.COMPLETED] if v[0] == job]
    assert done[1]["outputs"]["video"]["facts"]["frame_count"] == 225


def test_a_clip_that_cannot_be_split_is_transcoded_whole(pipe: Any) -> None:
    task = _task(pipe, HLS)  # audio muxed into the TS segments: joined audio is not made
    job = task["job_id"]
    asyncio.run(transcode.split(asyncio.Lock(), pipe, event(schemas.TRANSCODES, task, job)))
    assert not pipe.sent[schemas.TRANSCODES]
    (sent,) = pipe.sent[schemas.UPLOADS]
    assert sent[1]["error"] is None
    assert {a["role"] for a in sent[1]["artifacts"]} == {"image", "video"}
