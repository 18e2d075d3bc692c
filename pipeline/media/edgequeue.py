"""The smart cut's video in output order, while its edges encode on worker threads.

The cutter plans and places every frame on its own thread, then hands over what to write
in output order: copied packets as they are, an edge as work for a worker thread (decode,
re-encode).  The queue writes from its front as soon as the front is ready, so the head
edge encodes while the middle is demuxed and the tail's edge can start beside it.  Copied
packets waiting behind an edge are bounded (``PENDING_LIMIT``): past it the cutter waits
for the edge, so memory does not grow with the clip.

The edges of one cut run on two threads (PyAV releases the GIL in avcodec's calls); work
for the same encoder is chained, since a codec context is not safe across threads.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from pipeline.media.edge import EdgeEncoder, EncodedPicture
from pipeline.media.writer import ClipWriter

# Copied bytes that may wait for an edge: ~30 s of 1080p at 2.2 Mbit/s, ~11 s at 6.  The
# peak grows with the clip up to this bound: `mediaexport cut --type 0` on the 1080p bench
# archive peaked at 109 / 120 / 144 MiB for 10 / 60 / 180 s at 32 MiB, at 109 / 117 / 117
# at 8 MiB (bench/memory.py: 107 / 114 / 114).  The price is the demux that no longer
# overlaps the head edge's encode: paired A B A B, a 60 s cut took no longer (median 0.56
# against 0.62 s), a 180 s one 0.82 against 0.77 s.
PENDING_LIMIT = 8 * 1024 * 1024

Work = Callable[[], list[EncodedPicture]]


@dataclass(frozen=True)
class _Copied:
    data: bytes
    pts: int
    dts: int
    key: bool
    duration: int
    time: float  # archive time


@dataclass(frozen=True)
class _Edge:
    pictures: Future[list[EncodedPicture]]
    delay: int  # ticks: dts = pts - delay
    duration: int
    time: float | None  # archive time of its last frame


class EdgeQueue:
    def __init__(self, writer: ClipWriter, written: Callable[[float], None]) -> None:
        """``written(t)`` is told, after each item, the archive time of the last frame
        written: the audio follows the video into the file in step with it (an MPEG-TS
        reader probes the start of the file and must meet both streams there)."""
        self.writer = writer
        self.written = written
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="smartcut-edge")
        self._items: deque[_Copied | _Edge] = deque()
        self._pending = 0  # bytes of the copied packets queued
        self._last: dict[int, Future[list[EncodedPicture]]] = {}  # per encoder (id)
        self.written_time: float | None = None  # archive time of the last frame written
        self.reencoded = 0

    def copy(self, data: bytes, pts: int, dts: int, key: bool, duration: int, time: float) -> None:
        self._items.append(_Copied(data, pts, dts, key, duration, time))
        self._pending += len(data)
        self._drain(block=self._pending > PENDING_LIMIT)

    def edge(
        self, encoder: EdgeEncoder, work: Work, *, delay: int, duration: int, time: float | None
    ) -> None:
        """Queue ``work`` (on ``encoder``) to run after the work queued on it before."""
        before = self._last.get(id(encoder))
        future = self.pool.submit(_after, before, work)
        self._last[id(encoder)] = future
        self._items.append(_Edge(future, delay, duration, time))
        self._drain(block=False)

    def retire(self, encoder: EdgeEncoder) -> None:
        """No more work for ``encoder`` (its id may be reused)."""
        self._last.pop(id(encoder), None)

    def finish(self) -> None:
        try:
            self._drain(block=True)
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def _drain(self, *, block: bool) -> None:
        """Write the ready items from the front; with ``block``, all of them."""
        while self._items:
            item = self._items[0]
            if isinstance(item, _Edge):
                if not (block or item.pictures.done()):
                    return
                self._write_edge(item)
            else:
                self.writer.mux_video(item.data, item.pts, item.dts, item.key, item.duration)
                self._pending -= len(item.data)
                self._reached(item.time)
            self._items.popleft()
            if self.written_time is not None:
                self.written(self.written_time)

    def _write_edge(self, item: _Edge) -> None:
        for q in item.pictures.result():
            self.writer.mux_video(q.data, q.pts, q.pts - item.delay, q.key, item.duration)
            self.reencoded += 1
        if item.time is not None:
            self._reached(item.time)

    def _reached(self, time: float) -> None:
        if self.written_time is None or time > self.written_time:
            self.written_time = time


def _after(before: Future[list[EncodedPicture]] | None, work: Work) -> list[EncodedPicture]:
    # ``before`` was submitted earlier to the same FIFO pool: it has started, so waiting
    # for it cannot deadlock.
    if before is not None:
        before.result()
    return work()
