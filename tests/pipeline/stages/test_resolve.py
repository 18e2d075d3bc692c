"""The resolve stage: the bounded live-edge wait, and a range the recording has not reached."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import replace
from pathlib import Path

import pytest

import schemas
from pipeline import stages
from pipeline.errors import RangeNotInArchive
from pipeline.synthetic.growing import GrowingArchive
from tests.pipeline.stages.helpers import (
    SPEC,
    FakeClock,
    Recorder,
    first_frame,
    live_archive,
    make_ctx,
    make_request,
)


def test_live_edge_wait_reports_shrinking_lack_then_delivers(tmp_path: Path) -> None:
    epoch = int(time.time() * 1000) - 4000  # archive time 4 s is now
    spec = replace(SPEC, seconds=10.0, epoch_ms=epoch)
    root = tmp_path / "archive"
    live = GrowingArchive(root / "mp4/live/1", spec)
    live.publish_until(4.0)
    ctx = make_ctx(tmp_path, root, live_wait_ms=30_000)
    req = make_request(
        ctx, LivePath="mp4/live/1/stream.mpd", StartPos=epoch + 2000, Duration=6000, FetchMedia=True
    )  # ends at 8 s: 4 s past the edge
    status = Recorder()

    async def fake_sleep(_: float) -> None:
        # the recorder catches up by 2 s (one segment) every time the stage waits
        live.publish_until(live.published_until + 2.0)
        await asyncio.sleep(0)

    routed = asyncio.run(stages.resolve_step(ctx, req, status, sleep=fake_sleep))
    lacks = [e.lack_length_ms for e in status.events if e.state == "waiting_live"]
    # 4 s past the video edge, more while the audio (on the AAC frame grid) trails it
    assert len(lacks) >= 2 and 4000 <= lacks[0] <= 6000
    assert all(a > b for a, b in itertools.pairwise(lacks))  # shrinking
    assert routed.task.lack_length_ms == 0
    assert "waiting_live" in routed.task.timings
    ctx.close()


def test_live_edge_wait_is_bounded(tmp_path: Path) -> None:
    epoch = int(time.time() * 1000) - 4000
    root = tmp_path / "archive"
    live = GrowingArchive(root / "mp4/live/1", replace(SPEC, seconds=10.0, epoch_ms=epoch))
    live.publish_until(4.0)
    ctx = make_ctx(tmp_path, root, live_wait_ms=300)
    req = make_request(
        ctx, LivePath="mp4/live/1/stream.mpd", StartPos=epoch + 2000, Duration=6000, FetchMedia=True
    )
    ctx.clock = fake = FakeClock()
    routed = asyncio.run(stages.resolve_step(ctx, req, Recorder(), sleep=fake.sleep))
    assert fake.waits == [0.3]  # the whole live wait, and not a moment longer
    # goes on with what exists and says what lacks (the archive did not grow meanwhile)
    lack = stages.lack_ms(asyncio.run(stages.resolve_once(ctx, req)).missing)
    assert 4000 <= routed.task.lack_length_ms == lack <= 6000
    ctx.close()


@pytest.mark.parametrize("kind", ["dash", "hls"])
@pytest.mark.parametrize("fetch_media", [False, True], ids=["thumbnail", "media"])
def test_live_wait_ending_with_nothing_recorded_fails_naming_start_pos(
    tmp_path: Path, kind: str, fetch_media: bool
) -> None:
    _live_archive, live_path, epoch = live_archive(tmp_path, kind, published=4.0)
    ctx = make_ctx(tmp_path, tmp_path / "archive", live_wait_ms=300)
    req = make_request(
        ctx, LivePath=live_path, StartPos=epoch + 6400, Duration=1000, FetchMedia=fetch_media
    )
    status = Recorder()
    ctx.clock = fake = FakeClock()
    with pytest.raises(RangeNotInArchive) as e:
        asyncio.run(stages.resolve_step(ctx, req, status, sleep=fake.sleep))
    assert fake.waits == [0.3]  # bounded by the live wait, no hang
    assert e.value.field == "StartPos"
    assert str(epoch + 6400) in str(e.value) and "live edge" in str(e.value)
    assert "waiting_live" in status.states()
    # a stage that re-resolves later (a redelivered task) fails the same way, no empty file
    task = schemas.StageTask(job_id=req.job_id, request=req)
    step = stages.transcode_step if fetch_media else stages.frame_step
    with pytest.raises(RangeNotInArchive):
        asyncio.run(step(ctx, task, status))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.*"))
    ctx.close()


def test_thumbnail_inside_the_recording_does_not_wait_for_its_duration(tmp_path: Path) -> None:
    _live_archive, live_path, epoch = live_archive(tmp_path, "dash", published=4.0)
    ctx = make_ctx(tmp_path, tmp_path / "archive", live_wait_ms=30_000)
    req = make_request(ctx, LivePath=live_path, StartPos=epoch + 1000, Duration=8000)
    status = Recorder()

    async def must_not_sleep(_: float) -> None:
        raise AssertionError("a thumbnail whose frame is recorded must not wait")

    routed = asyncio.run(stages.resolve_step(ctx, req, status, sleep=must_not_sleep))
    assert routed.topic == schemas.FRAMES
    assert "waiting_live" not in status.states()
    ctx.close()


@pytest.mark.parametrize("kind", ["dash", "hls"])
@pytest.mark.parametrize("fetch_media", [False, True], ids=["thumbnail", "media"])
def test_range_starting_beyond_the_live_edge_waits_then_delivers(
    tmp_path: Path, kind: str, fetch_media: bool
) -> None:
    live, live_path, epoch = live_archive(tmp_path, kind, published=4.0)
    ctx = make_ctx(tmp_path, tmp_path / "archive", live_wait_ms=30_000)
    # frame 160 = 6.4 s: the whole range (6.4-9.4 s) lies past the edge at 4 s
    req = make_request(
        ctx, LivePath=live_path, StartPos=epoch + 6400, Duration=3000, FetchMedia=fetch_media
    )
    status = Recorder()
    edges: list[float] = []

    async def recorder_catches_up(_: float) -> None:
        edges.append(live.published_until)
        live.publish_until(live.published_until + 2.0)  # one segment per wait
        await asyncio.sleep(0)

    async def run() -> stages.Published:
        routed = await stages.resolve_step(ctx, req, status, sleep=recorder_catches_up)
        if fetch_media:
            upload = await stages.transcode_step(ctx, routed.task, status)
        else:
            upload = await stages.frame_step(ctx, routed.task, status)
        return await stages.upload_step(ctx, upload, status)

    published = asyncio.run(run())
    assert published.completed.outcome == "ok", published.completed.error
    # It waited while the edge was short of the start (4 s, 6 s); a clip then waits for its
    # end (8 s), a thumbnail only for its frame.
    assert edges == ([4.0, 6.0, 8.0] if fetch_media else [4.0, 6.0])
    assert "waiting_live" in status.states()
    assert "waiting_live" in published.completed.timings
    outputs = published.completed.outputs
    image_out, video_out = outputs["image"], outputs.get("video")
    assert image_out is not None
    image = Path(ctx.store.location(image_out.key)).read_bytes()
    assert first_frame(image) == 160
    if fetch_media:
        assert published.completed.lack_length_ms == 0
        assert published.completed.delivered_ms == 3000
        assert video_out is not None
        video = Path(ctx.store.location(video_out.key)).read_bytes()
        assert first_frame(video) == 160
    ctx.close()
