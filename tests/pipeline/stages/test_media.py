"""The frame and transcode stages: what they stage, on generated archives."""

from __future__ import annotations

import asyncio
from pathlib import Path

import schemas
from pipeline import stages
from pipeline.synthetic import write_dash
from tests.pipeline.stages.helpers import (
    EPOCH,
    LIVE_PATH,
    SPEC,
    Recorder,
    first_frame,
    make_ctx,
    make_request,
)


def test_media_job_yields_clip_and_its_first_frame(tmp_path: Path, archive_root: Path) -> None:
    ctx = make_ctx(tmp_path, archive_root)
    req = make_request(ctx, FetchMedia=True, export_type=1, FileName="cut.ts")
    status = Recorder()

    async def run() -> stages.Published:
        routed = await stages.resolve_step(ctx, req, status)
        assert routed.topic == schemas.TRANSCODES
        upload = await stages.transcode_step(ctx, routed.task, status)
        return await stages.upload_step(ctx, upload, status)

    published = asyncio.run(run())
    video_out, image_out = (
        published.completed.outputs["video"],
        published.completed.outputs["image"],
    )
    assert video_out is not None and image_out is not None
    assert video_out.key == f"export/{req.job_id}/cut.ts"
    assert video_out.facts["container"] == "mpegts"
    assert published.completed.delivered_ms == 2000
    assert published.completed.lack_length_ms == 0
    video = Path(ctx.store.location(video_out.key)).read_bytes()
    image = Path(ctx.store.location(image_out.key)).read_bytes()
    assert first_frame(video) == 25 == first_frame(image)
    assert any(e.state == "transcoding" and e.progress for e in status.events)
    ctx.close()


def test_thumbnail_inside_a_long_gap_is_the_first_frame_after_it(tmp_path: Path) -> None:
    # A 2 s gap (frames 50-99 absent) and a 500 ms Duration that ends inside it: the JPEG
    # is the first frame at or after StartPos, i.e. frame 100, as `mediaexport thumb` says.
    root = tmp_path / "gap-archive"
    write_dash(root / Path(LIVE_PATH).parent, SPEC, gap=(2.0, 4.0))
    ctx = make_ctx(tmp_path, root)
    req = make_request(ctx, StartPos=EPOCH + 2400, Duration=500)
    status = Recorder()

    async def run() -> schemas.UploadTask:
        routed = await stages.resolve_step(ctx, req, status)
        return await stages.frame_step(ctx, routed.task, status)

    upload = asyncio.run(run())
    staged = Path(ctx.store.location(upload.artifacts[0].staging_key))
    assert first_frame(staged.read_bytes()) == 100
    ctx.close()
