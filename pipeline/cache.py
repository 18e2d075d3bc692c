"""One worker's memory of the archive: objects read once, decoded pictures kept, one budget.

``EXPORT_CACHE_MB`` is split a quarter / three quarters:

* **objects** (:class:`CachedReader`): media and init segments, sidx ranges and manifests,
  as bytes, keyed by scope (S3 endpoint and region, or the local filesystem), location and
  byte range.  Segments are immutable: on S3 a cached one is served without a request; a
  local file costs one ``fstat`` (inode, mtime, size) per use, which also catches a file
  still being written.  A manifest (any whole S3 object without a media suffix) is
  revalidated on every use with a conditional GET, so a growing one is never served stale.
* **pictures** (:meth:`MediaCache.frames_for`): the decoded pictures of the GOPs thumbnails
  were just taken from (``pipeline.media.thumbnail``), a 1080p yuv420p picture ~3 MiB.

Pictures take the larger share: a second thumbnail in a GOP just served is then a JPEG
encode, while a segment (a few hundred kB to 1.5 MB per 2 s) is cheap to keep either way.
Both are LRU, thread-safe (one worker's stage threads share them) and never hold more than
their share.  A share is true memory only if freed bytes go back to the system:
:func:`return_freed_memory` (called at the worker's start) stops glibc from keeping freed
pictures in its heaps, and ``pipeline.media.decoded_gop`` trims pictures as they are
decoded, so a decoder's frame pool never holds more than what is kept.
Confinement stays in front: ``pipeline.archive.ConfinedReader`` wraps the
cached reader, and a cached picture is served only after the reader's check of its segment
(``pipeline.cache_reads.check_readable``).
"""

from __future__ import annotations

import ctypes
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from pipeline.cache_reads import Fresh, FreshBlobs
from pipeline.model import ByteRange
from pipeline.storage import Blobs, is_s3

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
MIB = 1 << 20
OBJECTS_SHARE = 4  # objects get 1/OBJECTS_SHARE of the budget, pictures the rest

# Whole S3 objects with these suffixes are segments (immutable); any other whole object may
# be a manifest that grows, and is revalidated.  Byte ranges are always segment data.
MEDIA_SUFFIXES = (".m4s", ".mp4", ".m4v", ".m4a", ".ts", ".aac", ".cmfv", ".cmfa", ".mp4v")
# glibc's mallopt: M_MMAP_THRESHOLD, and glibc's own initial value of it (128 KiB).
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 * 1024


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0


class LRU(Generic[K, V]):
    """Least recently used entries dropped first, so that their sizes stay within ``budget``
    bytes; an entry larger than the budget is not kept."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self.stats = CacheStats()
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.stats.misses += 1
                return None
            self._entries.move_to_end(key)
            self.stats.hits += 1
            return entry[0]

    def put(self, key: K, value: V, size: int) -> None:
        with self._lock:
            self._drop(key)
            if size > self.budget:
                return
            self._entries[key] = (value, size)
            self.used += size
            self._evict()

    def resize(self, key: K, size: int) -> None:
        """An entry grew or shrank in place (more pictures decoded into it); it is in use,
        so it becomes the most recent."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return
            self.used += size - entry[1]
            self._entries[key] = (entry[0], size)
            self._entries.move_to_end(key)
            if size > self.budget:
                self._drop(key)
            self._evict()

    def discard(self, key: K) -> None:
        with self._lock:
            self._drop(key)

    def _drop(self, key: K) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.used -= entry[1]

    def _evict(self) -> None:
        while self.used > self.budget:
            _, (_, size) = self._entries.popitem(last=False)
            self.used -= size
            self.stats.evictions += 1


@dataclass(frozen=True)
class Shelf(Generic[V]):
    """One scope's view of a shared LRU: its keys cannot meet another scope's."""

    lru: LRU[tuple[str, Hashable], V]
    scope: str

    @property
    def budget(self) -> int:
        return self.lru.budget

    def get(self, key: Hashable) -> V | None:
        return self.lru.get((self.scope, key))

    def put(self, key: Hashable, value: V, size: int) -> None:
        self.lru.put((self.scope, key), value, size)

    def resize(self, key: Hashable, size: int) -> None:
        self.lru.resize((self.scope, key), size)

    def discard(self, key: Hashable) -> None:
        self.lru.discard((self.scope, key))


class FreshReader(Protocol):
    """What the cache needs of storage (pipeline.cache_reads.FreshBlobs)."""

    def read_fresh(
        self, location: str, byte_range: ByteRange | None, known: str | None
    ) -> Fresh: ...

    def exists(self, location: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Stored:
    data: bytes
    version: str


@dataclass(frozen=True)
class CachedReader:
    """A BlobReader that serves what it read before from memory (see the module's doc)."""

    inner: FreshReader
    objects: Shelf[Stored]

    def read(self, location: str, byte_range: ByteRange | None = None) -> bytes:
        key = (location, byte_range)
        stored = self.objects.get(key)
        if stored is not None and is_s3(location) and immutable(location, byte_range):
            return stored.data
        fresh = self.inner.read_fresh(location, byte_range, stored.version if stored else None)
        if fresh.data is None:
            assert stored is not None  # "unchanged" answers only a known version
            return stored.data
        if fresh.version is None:
            self.objects.discard(key)
        else:
            self.objects.put(key, Stored(fresh.data, fresh.version), len(fresh.data))
        return fresh.data

    def exists(self, location: str) -> bool:
        return self.inner.exists(location)


def immutable(location: str, byte_range: ByteRange | None) -> bool:
    return byte_range is not None or location.lower().endswith(MEDIA_SUFFIXES)


class MediaCache:
    """The worker's cache: one per StageContext, shared by its stages and threads."""

    def __init__(self, budget_mb: int, endpoint: str | None = None) -> None:
        budget = budget_mb * MIB
        self.endpoint = endpoint or "aws"
        self.objects: LRU[tuple[str, Hashable], Stored] = LRU(budget // OBJECTS_SHARE)
        self.frames: LRU[tuple[str, Hashable], object] = LRU(budget - budget // OBJECTS_SHARE)

    @property
    def used(self) -> int:
        """Bytes held now, objects and pictures together."""
        return self.objects.used + self.frames.used

    @property
    def budget(self) -> int:
        return self.objects.budget + self.frames.budget

    def scope(self, region: str | None) -> str:
        """Keys of one S3 endpoint and region; local paths share the scope of the host."""
        return f"{self.endpoint}|{region or ''}"

    def reader(self, storage: Blobs | FreshReader, region: str | None) -> CachedReader:
        """``storage`` through this cache, keyed in ``region``'s scope."""
        inner = FreshBlobs(storage) if isinstance(storage, Blobs) else storage
        return CachedReader(inner, Shelf(self.objects, self.scope(region)))

    def frames_for(self, region: str | None) -> Shelf[object]:
        """Where pipeline.media.thumbnail keeps the decoded GOPs of this scope's archives."""
        return Shelf(self.frames, self.scope(region))


def return_freed_memory() -> bool:
    """Make glibc give freed large blocks (decoded pictures) back to the system at once.

    glibc serves a block above its mmap threshold (128 KiB at first) with mmap, but raises
    the threshold to the size of each such block freed, up to 32 MiB: after the first
    pictures are freed, 3 MiB ones come from the heaps of several threads' arenas, where
    freed ones stay resident.  Measured: 40 distinct 1080p thumbnails in one process hold
    298 MiB with the threshold fixed, 402 MiB with glibc's moving one; `up` over 500 jobs
    peaked at 658 against 1098 MiB (1 MiB fixed: 818).  The price is a page fault per page
    of each new picture (a cold 1080p grab 131 vs 92 ms here).  Fixing it (mallopt) also
    stops the moving.  A service sets this at startup; False where there is no glibc
    mallopt (musl accepts and ignores it, macOS has none).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
