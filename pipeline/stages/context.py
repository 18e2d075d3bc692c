"""StageContext: the per-worker resources every stage shares (storage, its cache, scratch,
CPU slots)."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pipeline.cache import MediaCache, Shelf
from pipeline.storage import BlobReader, Blobs, OutputStore

if TYPE_CHECKING:
    from pipeline.archive import ConfinedReader
    from pipeline.settings import Settings
    from schemas import StatusEvent
    from schemas.request import ArchiveSource, ExportRequest

T = TypeVar("T")
Publish = Callable[["StatusEvent"], Coroutine[Any, Any, None]]
Clock = Callable[[], int]
SlotKind = Literal["transcode", "frame"]


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class StageContext:
    """Per-worker resources the stages share: storage, scratch space, CPU slots, and the
    cache (``EXPORT_CACHE_MB``; None when it is 0) every stage reads the archive through."""

    settings: Settings
    store: OutputStore
    work_dir: Path
    executor: ThreadPoolExecutor
    clock: Clock = now_ms
    cache: MediaCache | None = None
    _readers: dict[str | None, Blobs] = field(default_factory=dict)
    _slots: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    # kind -> how many jobs hold a slot right now (for /metrics)
    _busy: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> StageContext:
        blobs = Blobs(settings.s3_endpoint_url, settings.s3_region)
        work_dir = settings.data_dir / "work"
        work_dir.mkdir(parents=True, exist_ok=True)
        workers = settings.max_transcodes + settings.max_frame_grabs + 4
        return cls(
            settings=settings,
            store=OutputStore(settings.output_url, blobs),
            work_dir=work_dir,
            executor=ThreadPoolExecutor(workers, thread_name_prefix="stage"),
            cache=MediaCache(settings.cache_mb, settings.s3_endpoint_url)
            if settings.cache_mb
            else None,
            _readers={settings.s3_region: blobs},
        )

    def reader(self, source: ArchiveSource) -> BlobReader:
        """Archive reader for a job's source (one boto3 client per region), through the
        worker's cache when it has one."""
        region = self._region(source)
        if region not in self._readers:
            self._readers[region] = Blobs(self.settings.s3_endpoint_url, region)
        blobs = self._readers[region]
        return blobs if self.cache is None else self.cache.reader(blobs, region)

    def frames(self, source: ArchiveSource) -> Shelf[object] | None:
        """The worker's decoded pictures for archives of ``source``'s scope (the ``frames``
        argument of ``grab_thumbnail``); None without a cache."""
        return None if self.cache is None else self.cache.frames_for(self._region(source))

    def _region(self, source: ArchiveSource) -> str | None:
        return source.region or self.settings.s3_region

    def archive(self, req: ExportRequest) -> tuple[ConfinedReader, str]:
        """A reader confined to the request's archive, and its manifest's location, after
        the allow-list check the ingress makes (an event may come straight from Kafka)."""
        from pipeline.archive import (
            ConfinedReader,
            archive_manifest,
            archive_root,
            check_source_allowed,
        )

        check_source_allowed(req.source, self.settings, field="source.bucket")
        reader = ConfinedReader(self.reader(req.source), archive_root(req.source, self.settings))
        return reader, archive_manifest(req.source, req.live_path, self.settings)

    def slots(self, kind: SlotKind) -> asyncio.Semaphore:
        # Created lazily: a Semaphore must be made inside the running loop's lifetime.
        if kind not in self._slots:
            limit = (
                self.settings.max_transcodes
                if kind == "transcode"
                else self.settings.max_frame_grabs
            )
            self._slots[kind] = asyncio.Semaphore(limit)
        return self._slots[kind]

    def in_flight(self, kind: SlotKind) -> int:
        """How many transcodes (or frame grabs) this worker runs right now."""
        return self._busy.get(kind, 0)

    async def io(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Blocking I/O (manifest reads, uploads) off the event loop, without a CPU slot."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    async def cpu(self, kind: SlotKind, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        async with self.slots(kind):
            self._busy[kind] = self._busy.get(kind, 0) + 1
            try:
                return await self.io(fn, *args, **kwargs)
            finally:
                self._busy[kind] -= 1

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
