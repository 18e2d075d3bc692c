"""The worker's cache in the stages: one cache per StageContext, the thumbnail's second
manifest resolution (frame stage after resolve stage) a revalidation, not a read."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import pytest

import pipeline.cache_reads as cache_reads
from pipeline import stages
from pipeline.cache import CachedReader
from pipeline.cache_reads import Fresh
from pipeline.model import ByteRange
from pipeline.storage import Blobs
from tests.pipeline.stages.helpers import EPOCH, LIVE_PATH, Recorder, make_ctx, make_request

_read_fresh = cache_reads.read_fresh


class Counting:
    """Every read the worker's cache makes of storage: bytes brought, or "unchanged"."""

    def __init__(self) -> None:
        self.reads: list[str] = []
        self.unchanged: list[str] = []

    def __call__(
        self, blobs: Blobs, location: str, byte_range: ByteRange | None, known: str | None
    ) -> Fresh:
        fresh = _read_fresh(blobs, location, byte_range, known)
        (self.reads if fresh.data is not None else self.unchanged).append(location)
        return fresh


def _old_copy(archive_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    shutil.copytree(archive_root, root)
    stamp = time.time() - 60
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (stamp, stamp))
    return root


def test_thumbnail_job_reads_its_manifest_once_and_a_repeat_reads_nothing(
    tmp_path: Path, archive_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = make_ctx(tmp_path, _old_copy(archive_root, tmp_path))
    storage = Counting()
    monkeypatch.setattr(cache_reads, "read_fresh", storage)
    manifest = os.path.join(ctx.settings.archive_url, *LIVE_PATH.split("/"))

    async def job(start_pos: int) -> None:
        req = make_request(ctx, StartPos=start_pos)
        routed = await stages.resolve_step(ctx, req, Recorder())
        await stages.frame_step(ctx, routed.task, Recorder())

    asyncio.run(job(EPOCH + 1480))  # frame 37
    assert storage.reads.count(manifest) == 1
    assert storage.unchanged.count(manifest) >= 1  # the frame stage's resolution
    media = [r for r in storage.reads if r != manifest]
    asyncio.run(job(EPOCH + 1200))  # frame 30, same segment: pictures decoded already
    assert storage.reads.count(manifest) == 1
    assert [r for r in storage.reads if r != manifest] == media
    ctx.close()


def test_cache_mb_zero_reads_through(tmp_path: Path, archive_root: Path) -> None:
    ctx = make_ctx(tmp_path, archive_root, cache_mb=0)
    req = make_request(ctx)
    assert ctx.cache is None and ctx.frames(req.source) is None
    assert isinstance(ctx.reader(req.source), Blobs)
    cached = make_ctx(tmp_path, archive_root)
    assert isinstance(cached.reader(req.source), CachedReader)
    assert cached.frames(req.source) is not None
    ctx.close()
    cached.close()
