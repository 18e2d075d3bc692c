"""Long clips split across workers: the split plan, and a split job run stage by stage
(split, every chunk, the join, the upload) against the same job transcoded whole."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import pytest

import schemas
from pipeline import stages
from pipeline.model import Gap, Resolution, SegmentRef, TrackInfo
from pipeline.stages import chunks as chunk_stage
from pipeline.stages.chunks import chunk_keys, chunk_resolution, plan_bounds, wants_split
from pipeline.stages.join import join_step
from pipeline.synthetic import ArchiveSpec, read_frame_index, write_dash
from tests.pipeline.stages.helpers import EPOCH, Recorder, make_ctx, make_request

CAM = "mp4/long/1/stream.mpd"
LONG = ArchiveSpec(seconds=14.0, epoch_ms=EPOCH)


def _res(seconds: int, start: float, end: float, **fields: Any) -> Resolution:
    video = tuple(SegmentRef(f"s{i}.m4s", float(2 * i), 2.0) for i in range(seconds // 2))
    return Resolution(
        manifest="m.mpd",
        kind="dash",
        clock="wall",
        epoch_ms_at_zero=0,
        start=start,
        end=end,
        video=tuple(r for r in video if r.start + r.duration > start and r.start < end),
        audio=(),
        video_track=TrackInfo("video", "avc1"),
        audio_track=None,
        **fields,
    )


# --- the plan ---------------------------------------------------------------------------


@pytest.mark.parametrize(("split_s", "partitions"), [(60, 2), (60, 4), (30, 4), (45, 1), (20, 3)])
def test_plan_cuts_at_segment_starts_covers_the_range_and_has_no_tiny_chunk(
    split_s: int, partitions: int
) -> None:
    res = _res(200, 1.3, 131.7)
    bounds = plan_bounds(res, split_s, partitions)
    assert bounds is not None
    assert bounds[0] == res.start and bounds[-1] == res.end  # exactly the range
    starts = {r.start for r in res.video}
    assert all(b in starts for b in bounds[1:-1])  # every cut is a keyframe (segment start)
    lengths = [b - a for a, b in itertools.pairwise(bounds)]
    assert all(length > 0 for length in lengths)
    ideal = res.duration / len(lengths)
    assert min(lengths) >= ideal / 2  # none tiny
    assert max(lengths) <= split_s + 2.0  # at most a segment over the threshold
    assert len(lengths) % partitions == 0  # every partition gets as many chunks


def test_a_clip_up_to_the_threshold_is_not_split() -> None:
    assert plan_bounds(_res(200, 0.0, 60.0), 60, 2) is None
    assert plan_bounds(_res(200, 0.0, 61.0), 0, 2) is None


def test_the_chunk_count_is_capped_so_chunks_stay_long() -> None:
    bounds = plan_bounds(_res(200, 0.0, 120.0), 60, 40)
    assert bounds is not None and len(bounds) - 1 == 8  # 120 s / (60 s / 4)


def test_muxed_audio_and_unrecorded_ranges_are_not_split() -> None:
    assert plan_bounds(_res(200, 0.0, 130.0, audio_muxed=True), 60, 2) is None
    live = _res(200, 0.0, 130.0, is_live=True, live_edge=100.0)
    assert plan_bounds(live, 60, 2) is None


def test_no_cut_at_a_gap_or_discontinuity() -> None:
    res = _res(40, 0.0, 40.0)
    video = list(res.video)
    video[10] = replace(video[10], discontinuity=True)  # 20.0 s
    res = replace(res, video=tuple(video), gaps=(Gap(9.0, 10.0, "gap"),))
    res = replace(res, video=tuple(r for r in res.video if r.start != 8.0))  # a hole 8-10 s
    bounds = plan_bounds(res, 10, 4)
    assert bounds is not None
    assert 20.0 not in bounds and 10.0 not in bounds


def test_a_chunk_reads_its_segments_with_the_neighbours_of_its_edges() -> None:
    res = _res(40, 1.0, 39.0)
    bounds = [1.0, 20.0, 39.0]
    first, last = chunk_resolution(res, bounds, 0), chunk_resolution(res, bounds, 1)
    assert [r.start for r in first.video] == [float(t) for t in range(0, 20, 2)]
    assert first.postroll is not None and first.postroll.start == 20.0
    assert last.preroll is not None and last.preroll.start == 18.0
    assert (first.start, first.end, last.start, last.end) == (1.0, 20.0, 20.0, 39.0)
    assert first.audio == () and first.audio_track is None


def test_only_long_mp4_transcodes_qualify(tmp_path: Path, archive_root: Path) -> None:
    ctx = make_ctx(tmp_path, archive_root, split_seconds=4)
    media = {"FetchMedia": True, "Duration": 6000}
    assert wants_split(ctx.settings, make_request(ctx, export_type=1, **media))
    assert wants_split(ctx.settings, make_request(ctx, export_type=2, **media))
    assert not wants_split(ctx.settings, make_request(ctx, export_type=0, **media))
    ts = make_request(ctx, export_type=1, FileName="x.ts", **media)
    assert not wants_split(ctx.settings, ts)
    assert not wants_split(ctx.settings, make_request(ctx, export_type=1, FetchMedia=True))
    ctx.close()


# --- a split job, stage by stage ------------------------------------------------------


@pytest.fixture(scope="module")
def long_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("long-archive")
    write_dash(root / Path(CAM).parent, LONG)
    return root


@pytest.fixture(scope="module")
def open_gop_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Leading pictures at every cut: a chunk needs the segment before (and after) it."""
    root = tmp_path_factory.mktemp("open-gop-archive")
    write_dash(root / Path(CAM).parent, replace(LONG, open_gop=True))
    return root


def _frames(path: Path) -> tuple[list[int | None], float]:
    with av.open(str(path), options={"ignore_editlist": "1"}) as c:
        indices = [read_frame_index(f) for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        duration = float(c.duration or 0) / av.time_base
    return indices, duration


async def _split_job(ctx: stages.StageContext, req: Any, status: Recorder) -> Any:
    routed = await stages.resolve_step(ctx, req, status)
    tasks = await chunk_stage.split_step(ctx, routed.task, status)
    assert len(tasks) >= 2
    upload = None
    for task in reversed(tasks):  # any order: the last one to finish joins
        res, encoded = await chunk_stage.chunk_step(ctx, task, status)
        assert encoded
        if await ctx.io(chunk_stage.all_done, ctx.store, req.job_id, task.chunk):
            upload = await join_step(ctx, task, res, status)
    assert upload is not None
    return upload, tasks


@pytest.mark.parametrize(
    ("export_type", "archive"),
    [(1, "long_archive"), (2, "long_archive"), (1, "open_gop_archive")],
)
def test_split_clip_is_the_unsplit_clip_frame_for_frame(
    tmp_path: Path, export_type: int, archive: str, request: pytest.FixtureRequest
) -> None:
    long_archive: Path = request.getfixturevalue(archive)
    body = {"FetchMedia": True, "export_type": export_type, "LivePath": CAM}
    body |= {"StartPos": LONG.start_pos_ms(10), "Duration": 300 * 40}
    whole_ctx = make_ctx(tmp_path / "whole", long_archive)
    split_ctx = make_ctx(tmp_path / "split", long_archive, split_seconds=4, partitions=2)
    status = Recorder()

    async def run() -> tuple[Any, Any, Any]:
        req = make_request(whole_ctx, **body)
        routed = await stages.resolve_step(whole_ctx, req, Recorder())
        whole = await stages.transcode_step(whole_ctx, routed.task, Recorder())
        upload, tasks = await _split_job(split_ctx, make_request(split_ctx, **body), status)
        return whole, upload, tasks

    whole, upload, tasks = asyncio.run(run())
    assert len(tasks) == 4  # 12 s over 2 partitions at 4 s: 4 chunks of 3 s or so
    (whole_video,) = [a for a in whole.artifacts if a.role == "video"]
    (split_video,) = [a for a in upload.artifacts if a.role == "video"]
    whole_frames, whole_s = _frames(Path(whole_ctx.store.location(whole_video.staging_key)))
    split_frames, split_s = _frames(Path(split_ctx.store.location(split_video.staging_key)))
    assert split_frames == list(range(10, 310)) == whole_frames  # each frame once, in order
    assert split_s == pytest.approx(whole_s, abs=1e-3)
    assert split_video.facts["frame_count"] == whole_video.facts["frame_count"] == 300
    assert split_video.facts["chunks"] == 4
    assert (upload.delivered_ms, upload.missing_ms) == (whole.delivered_ms, whole.missing_ms)
    progress = [e.progress for e in status.events if e.chunk is not None]
    assert progress and all(p is not None for p in progress)
    whole_ctx.close()
    split_ctx.close()


def test_a_chunk_done_already_is_not_encoded_again(
    tmp_path: Path, long_archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = make_ctx(tmp_path, long_archive, split_seconds=4, partitions=2)
    body = {"FetchMedia": True, "export_type": 1, "LivePath": CAM}
    req = make_request(ctx, StartPos=LONG.start_pos_ms(0), Duration=12_000, **body)
    encodes: list[int] = []
    export = chunk_stage._export

    def counted(*args: Any) -> Any:
        encodes.append(1)
        return export(*args)

    monkeypatch.setattr(chunk_stage, "_export", counted)

    async def run() -> list[schemas.StageTask]:
        routed = await stages.resolve_step(ctx, req, Recorder())
        tasks = await chunk_stage.split_step(ctx, routed.task, Recorder())
        _, first = await chunk_stage.chunk_step(ctx, tasks[0], Recorder())
        _, again = await chunk_stage.chunk_step(ctx, tasks[0], Recorder())  # redelivered
        assert (first, again) == (True, False)
        return tasks

    tasks = asyncio.run(run())
    assert len(encodes) == 1
    assert tasks[0].chunk is not None
    assert ctx.store.exists(chunk_keys(req.job_id, tasks[0].chunk)[0])
    assert not chunk_stage.all_done(ctx.store, req.job_id, tasks[0].chunk)
    ctx.close()
