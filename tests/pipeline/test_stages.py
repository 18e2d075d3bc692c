"""The stage functions without a broker: resolve (incl. the live-edge wait), frames,
transcode, upload/publish, on generated archives and a local output store."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import pytest

import schemas
from pipeline import stages
from pipeline.errors import RangeNotInArchive, SourceNotFound
from pipeline.legacy.request import parse_export_body
from pipeline.settings import Settings
from pipeline.synthetic import ArchiveSpec, read_frame_index, write_dash
from pipeline.synthetic.growing import GrowingArchive
from schemas.request import ExportRequest

EPOCH = 1_562_253_600_000
SPEC = ArchiveSpec(seconds=6.0, epoch_ms=EPOCH)
LIVE_PATH = "mp4/cam/1/stream.mpd"


class Recorder:
    """Collects what a stage publishes on export.status (validated like the real topic)."""

    def __init__(self) -> None:
        self.events: list[schemas.StatusEvent] = []

    async def __call__(self, event: schemas.StatusEvent) -> None:
        schemas.convert(schemas.STATUS, event)
        self.events.append(event)

    def states(self) -> list[str]:
        return [e.state for e in self.events]


@pytest.fixture(scope="module")
def archive_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stage-archive")
    write_dash(root / Path(LIVE_PATH).parent, SPEC)
    return root


class FakeClock:
    """The stage's clock and sleep in one: a wait advances the clock by exactly its length,
    so what a test asserts about the live wait does not depend on the machine's speed."""

    def __init__(self) -> None:
        self.now = int(time.time() * 1000)
        self.waits: list[float] = []

    def __call__(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += round(seconds * 1000)


def _ctx(tmp_path: Path, archive_root: Path, **overrides: Any) -> stages.StageContext:
    settings = Settings(
        data_dir=tmp_path / "data",
        archive_url=str(archive_root),
        output_url=str(tmp_path / "out"),
        **overrides,
    )
    return stages.StageContext.from_settings(settings)


def _request(ctx: stages.StageContext, **fields: Any) -> ExportRequest:
    body = {
        "StartPos": EPOCH + 1000,
        "Duration": 2000,
        "LivePath": LIVE_PATH,
        "FetchMedia": False,
        "story": {"id": "S1", "name": "story"},
    }
    body.update(fields)
    return parse_export_body(body, ctx.settings, now_ms=1)


def _first_frame(data: bytes) -> int | None:
    with av.open(io.BytesIO(data), "r") as c:
        return read_frame_index(next(iter(c.decode(video=0))))


def test_thumbnail_job_runs_resolve_frames_upload(tmp_path: Path, archive_root: Path) -> None:
    ctx = _ctx(tmp_path, archive_root)
    req = _request(ctx, StartPos=EPOCH + 1480)  # frame 37
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
    assert _first_frame(final.read_bytes()) == 37
    assert not (tmp_path / "out" / "staging" / req.job_id).exists()
    meta = json.loads(Path(str(final) + ".meta.json").read_text())
    assert meta["story-id"] == "S1" and meta["job-id"] == req.job_id
    assert status.states()[:2] == ["resolving", "resolving"]
    assert "grabbing" in status.states() and "uploading" in status.states()
    ctx.close()


def test_media_job_yields_clip_and_its_first_frame(tmp_path: Path, archive_root: Path) -> None:
    ctx = _ctx(tmp_path, archive_root)
    req = _request(ctx, FetchMedia=True, export_type=1, FileName="cut.ts")
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
    assert _first_frame(video) == 25 == _first_frame(image)
    assert any(e.state == "transcoding" and e.progress for e in status.events)
    ctx.close()


def test_upload_redelivery_keeps_one_output(tmp_path: Path, archive_root: Path) -> None:
    ctx = _ctx(tmp_path, archive_root)
    req = _request(ctx)
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
    ctx = _ctx(tmp_path, archive_root)
    req = _request(ctx, LivePath="mp4/none/1/stream.mpd")
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


def test_live_edge_wait_reports_shrinking_lack_then_delivers(tmp_path: Path) -> None:
    epoch = int(time.time() * 1000) - 4000  # archive time 4 s is now
    spec = replace(SPEC, seconds=10.0, epoch_ms=epoch)
    root = tmp_path / "archive"
    live = GrowingArchive(root / "mp4/live/1", spec)
    live.publish_until(4.0)
    ctx = _ctx(tmp_path, root, live_wait_ms=30_000)
    req = _request(
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
    ctx = _ctx(tmp_path, root, live_wait_ms=300)
    req = _request(
        ctx, LivePath="mp4/live/1/stream.mpd", StartPos=epoch + 2000, Duration=6000, FetchMedia=True
    )
    ctx.clock = fake = FakeClock()
    routed = asyncio.run(stages.resolve_step(ctx, req, Recorder(), sleep=fake.sleep))
    assert fake.waits == [0.3]  # the whole live wait, and not a moment longer
    # goes on with what exists and says what lacks (the archive did not grow meanwhile)
    lack = stages.lack_ms(asyncio.run(stages.resolve_once(ctx, req)).missing)
    assert 4000 <= routed.task.lack_length_ms == lack <= 6000
    ctx.close()


# --- a range that starts beyond the live edge --------------------------------------------


def _live(tmp_path: Path, kind: str, published: float) -> tuple[GrowingArchive, str, int]:
    """A 10 s growing recording whose archive time 4 s is "now", published up to
    ``published`` s; returns it, its LivePath and its epoch."""
    epoch = int(time.time() * 1000) - 4000
    folder = "mp4/live/1" if kind == "dash" else "ts/live/1"
    live = GrowingArchive(
        tmp_path / "archive" / folder, replace(SPEC, seconds=10.0, epoch_ms=epoch), kind=kind
    )
    live.publish_until(published)
    return live, f"{folder}/{live.manifest.name}", epoch


@pytest.mark.parametrize("kind", ["dash", "hls"])
@pytest.mark.parametrize("fetch_media", [False, True], ids=["thumbnail", "media"])
def test_range_starting_beyond_the_live_edge_waits_then_delivers(
    tmp_path: Path, kind: str, fetch_media: bool
) -> None:
    live, live_path, epoch = _live(tmp_path, kind, published=4.0)
    ctx = _ctx(tmp_path, tmp_path / "archive", live_wait_ms=30_000)
    # frame 160 = 6.4 s: the whole range (6.4-9.4 s) lies past the edge at 4 s
    req = _request(
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
    assert _first_frame(image) == 160
    if fetch_media:
        assert published.completed.lack_length_ms == 0
        assert published.completed.delivered_ms == 3000
        assert video_out is not None
        video = Path(ctx.store.location(video_out.key)).read_bytes()
        assert _first_frame(video) == 160
    ctx.close()


@pytest.mark.parametrize("kind", ["dash", "hls"])
@pytest.mark.parametrize("fetch_media", [False, True], ids=["thumbnail", "media"])
def test_live_wait_ending_with_nothing_recorded_fails_naming_start_pos(
    tmp_path: Path, kind: str, fetch_media: bool
) -> None:
    _live_archive, live_path, epoch = _live(tmp_path, kind, published=4.0)
    ctx = _ctx(tmp_path, tmp_path / "archive", live_wait_ms=300)
    req = _request(
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
    _live_archive, live_path, epoch = _live(tmp_path, "dash", published=4.0)
    ctx = _ctx(tmp_path, tmp_path / "archive", live_wait_ms=30_000)
    req = _request(ctx, LivePath=live_path, StartPos=epoch + 1000, Duration=8000)
    status = Recorder()

    async def must_not_sleep(_: float) -> None:
        raise AssertionError("a thumbnail whose frame is recorded must not wait")

    routed = asyncio.run(stages.resolve_step(ctx, req, status, sleep=must_not_sleep))
    assert routed.topic == schemas.FRAMES
    assert "waiting_live" not in status.states()
    ctx.close()


def test_thumbnail_inside_a_long_gap_is_the_first_frame_after_it(tmp_path: Path) -> None:
    # A 2 s gap (frames 50-99 absent) and a 500 ms Duration that ends inside it: the JPEG
    # is the first frame at or after StartPos, i.e. frame 100, as `mediaexport thumb` says.
    root = tmp_path / "gap-archive"
    write_dash(root / Path(LIVE_PATH).parent, SPEC, gap=(2.0, 4.0))
    ctx = _ctx(tmp_path, root)
    req = _request(ctx, StartPos=EPOCH + 2400, Duration=500)
    status = Recorder()

    async def run() -> schemas.UploadTask:
        routed = await stages.resolve_step(ctx, req, status)
        return await stages.frame_step(ctx, routed.task, status)

    upload = asyncio.run(run())
    staged = Path(ctx.store.location(upload.artifacts[0].staging_key))
    assert _first_frame(staged.read_bytes()) == 100
    ctx.close()
