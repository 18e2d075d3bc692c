"""A job through resolve, a media stage and upload: final keys, redelivery, failure."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import schemas
from pipeline import stages
from pipeline.errors import SourceNotFound
from tests.pipeline.stages.helpers import (
    EPOCH,
    Recorder,
    first_frame,
    make_ctx,
    make_request,
)


def test_thumbnail_job_runs_resolve_frames_upload(tmp_path: Path, archive_root: Path) -> None:
    ctx = make_ctx(tmp_path, archive_root)
    req = make_request(ctx, StartPos=EPOCH + 1480)  # frame 37
    status = Recorder()

    async def run() -> stages.Published:
        routed = await stages.resolve_step(ctx, req, status)
        assert routed.topic == schemas.FRAMES
        schemas.convert(schemas.FRAMES, routed.task)
        upload = await stages.frame_step(ctx, routed.task, status)
        schemas.convert(schemas.UPLOADS, upload)
        assert [a.staging_key for a in upload.artifacts] == [f"staging/{req.job_id}/image.jpg"]
        return await stages.upload_step(ctx, upload, status)

    published = asyncio.run(run())
    schemas.convert(schemas.COMPLETED, published.completed)
    assert published.completed.outcome == "ok"
    assert set(published.completed.timings) == {"resolve", "frames", "upload"}
    assert published.status.state == "done"
    final = Path(ctx.store.location(req.image_key))
    assert first_frame(final.read_bytes()) == 37
    assert not (tmp_path / "out" / "staging" / req.job_id).exists()
    meta = json.loads(Path(str(final) + ".meta.json").read_text())
    assert meta["story-id"] == "S1" and meta["job-id"] == req.job_id
    assert status.states()[:2] == ["resolving", "resolving"]
    assert "grabbing" in status.states() and "uploading" in status.states()
    ctx.close()


def test_upload_redelivery_keeps_one_output(tmp_path: Path, archive_root: Path) -> None:
    ctx = make_ctx(tmp_path, archive_root)
    req = make_request(ctx)
    status = Recorder()

    async def run() -> tuple[stages.Published, stages.Published]:
        routed = await stages.resolve_step(ctx, req, status)
        upload = await stages.frame_step(ctx, routed.task, status)
        first = await stages.upload_step(ctx, upload, status)
        again = await stages.upload_step(ctx, upload, status)  # staging is already gone
        return first, again

    first, again = asyncio.run(run())
    assert first.completed.outputs == again.completed.outputs
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert sorted(p.name for p in files) == sorted(
        [Path(req.image_key).name, Path(req.image_key).name + ".meta.json"]
    )
    ctx.close()


def test_failure_becomes_a_failed_completed_event(tmp_path: Path, archive_root: Path) -> None:
    ctx = make_ctx(tmp_path, archive_root)
    req = make_request(ctx, LivePath="mp4/none/1/stream.mpd")
    status = Recorder()

    async def run() -> stages.Published:
        with pytest.raises(SourceNotFound):
            await stages.resolve_step(ctx, req, status)
        task = stages.upload_task(req, error=SourceNotFound("gone", obj=req.live_path))
        return await stages.upload_step(ctx, task, status)

    published = asyncio.run(run())
    schemas.convert(schemas.COMPLETED, published.completed)
    assert published.completed.outcome == "failed"
    assert published.completed.error is not None
    assert published.completed.error.code == -1
    assert published.status.state == "failed"
    ctx.close()
