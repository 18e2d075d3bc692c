"""The decoded-GOP cache behind ``grab_thumbnail``: a segment's packets, the pictures decoded
from them, and the decoder that decoded the last of them, parked.

A :class:`DecodedSegment` lives on the worker's ``frames`` shelf (``StageContext.frames``).
A picture already decoded is served as is.  A picture later in the same GOP continues on
the parked decoder from the packet it stopped at (decoding only the pictures between, the
non-reference ones skipped) instead of from the keyframe again: a viewer stepping forward
through a GOP costs one frame's decode a step, not the GOP's prefix.  A picture before the
parked position (or in a later GOP of the segment) starts a decoder from its keyframe, as
does any failure of a parked one, so the picture is the one a fresh decode gives.

A parked decoder holds its reference pictures and its buffer pool, which keeps every
buffer it ever handed out; the pictures are trimmed to the segment's share of the budget
as they are decoded, so the pool stays about that size, and what the decoder holds beyond
the pictures kept measured ~13 MiB at 1080p (RSS, 2 parked: 239 MiB against 213 without).
At most ``PARKED_MAX`` are kept per process, least recently used first out; that memory is
beside the cache budget (EXPORT_CACHE_MB), not in it.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import av

from pipeline.cache_reads import check_readable
from pipeline.errors import MediaError
from pipeline.media.encode import TICKS, new_decoder, packet
from pipeline.media.source import (
    SegmentFetcher,
    SegmentUnusable,
    TimedPacket,
    TrackDemuxer,
    leading_wanted,
)
from pipeline.media.timeline import EPS
from pipeline.model import SegmentRef
from pipeline.storage import BlobReader

if TYPE_CHECKING:
    from pipeline.cache import Shelf

# One segment's pictures take at most this fraction of the pictures' budget, so the GOPs of
# the last few thumbnails stay (at 1080p and 256 MiB: ~20 pictures each), not one GOP whole.
SEGMENTS_KEPT = 3
PARKED_MAX = 2  # parked decoders per process: the last two GOPs served


def load_video(
    demuxer: TrackDemuxer, ref: SegmentRef, *, out_of_turn: bool = False
) -> tuple[list[TimedPacket], str]:
    """A segment's packets; ``out_of_turn`` (the pre- or postroll) on the clock learnt."""
    try:
        seg = demuxer.load_out_of_turn(ref) if out_of_turn else demuxer.load(ref)
    except SegmentUnusable as e:
        raise MediaError(
            f"cannot read the segment holding the thumbnail: {e.detail}", obj=ref.url
        ) from e
    assert seg.video_info is not None
    return seg.video, seg.video_info.codec


def span(packets: list[TimedPacket], start: float) -> tuple[int, int | None]:
    """The last keyframe at or before the wanted frame, and the wanted frame (decode-order
    indices; None when no frame of ``packets`` is at or after ``start``)."""
    begin = 0
    for i, p in enumerate(packets):
        if p.key and p.pts <= start + EPS:
            begin = i
    # Only pictures before the wanted one in decode order can be its references, so the
    # packets after it need no decoding (most of a 2 s segment when the frame is early).
    wanted = min(
        (i for i in range(begin, len(packets)) if packets[i].pts >= start - EPS),
        key=lambda i: packets[i].pts,
        default=None,
    )
    return begin, wanted


def cached_segment(frames: Shelf[object], reader: BlobReader, ref: SegmentRef) -> DecodedSegment:
    """``ref``'s entry on the shelf, demuxed (and put there) if it is not there yet.

    The reader's confinement check runs for a cached entry too: an archive whose reader
    refuses the segment's location never gets its pictures.
    """
    key: Hashable = (ref, ref.run_head)  # run_head is no part of SegmentRef's equality
    entry = frames.get(key)
    if isinstance(entry, DecodedSegment):
        check_readable(reader, ref.url)
        if ref.init_url is not None:
            check_readable(reader, ref.init_url)
        return entry
    demuxer = TrackDemuxer(SegmentFetcher(reader), want_video=True, want_audio=False)
    packets, codec = load_video(demuxer, ref)
    entry = DecodedSegment(key, ref, packets, codec)
    frames.put(key, entry, entry.size)
    return entry


@dataclass(eq=False)
class Parked:
    """A decoder stopped mid-GOP: the packets from ``begin`` (a keyframe) to ``position``
    (exclusive) were sent (their pts in ``sent``); ``shown`` is the latest pts it output.
    It outputs in presentation order, so a picture sent and later than ``shown`` is still
    inside it (the reorder delay) unless it was a non-reference picture it skipped."""

    decoder: av.VideoCodecContext
    begin: int
    position: int
    sent: set[int] = field(default_factory=set)
    shown: int | None = None

    def holds(self, pts: int) -> bool:
        """Whether the picture at ``pts`` was sent and may still come out."""
        return pts in self.sent and (self.shown is None or pts > self.shown)

    def reaches(self, begin: int, wanted: int, target: int) -> bool:
        """Whether going on can give the picture ``target`` at decode index ``wanted``: it
        is inside the decoder, or not sent yet in the same GOP run.  One shown and since
        trimmed, or skipped, needs a decoder of its own from the keyframe."""
        if target in self.sent:
            return self.holds(target)
        return self.begin == begin and self.position <= wanted


class ParkedDecoders:
    """Which segments hold a parked decoder: at most ``limit``, least recently used out.

    The decoder stays on its segment (so it goes when the shelf drops the segment; this
    holds the segments weakly).  A thread takes it off (``take``) while it decodes and puts
    it back after (``park``), so no two threads ever share one decoder.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._order: OrderedDict[int, weakref.ref[DecodedSegment]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, segment: DecodedSegment) -> Parked | None:
        with self._lock:
            parked, segment.parked = segment.parked, None
            self._order.pop(id(segment), None)
            return parked

    def park(self, segment: DecodedSegment, parked: Parked) -> None:
        with self._lock:
            segment.parked = parked
            self._order[id(segment)] = weakref.ref(segment)
            self._order.move_to_end(id(segment))
            for key in [k for k, ref in self._order.items() if ref() is None]:
                del self._order[key]  # its segment left the shelf, its decoder with it
            while len(self._order) > self.limit:
                other = self._order.popitem(last=False)[1]()
                if other is not None:
                    other.parked = None

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for ref in self._order.values() if ref() is not None)

    def clear(self) -> None:
        with self._lock:
            for ref in self._order.values():
                if (segment := ref()) is not None:
                    segment.parked = None
            self._order.clear()


PARKED = ParkedDecoders(PARKED_MAX)


@dataclass(eq=False)
class DecodedSegment:
    """A segment's video packets (archive-timed, decode order) and the pictures decoded
    from them so far, by pts (ticks); shared by the threads of one worker."""

    key: Hashable
    ref: SegmentRef
    packets: list[TimedPacket]
    codec: str
    pictures: dict[int, av.VideoFrame] = field(default_factory=dict)
    decodes: int = 0  # decoders started from a keyframe so far (tests count them)
    continued: int = 0  # pictures decoded on a parked decoder (tests count them)
    parked: Parked | None = None  # only ParkedDecoders touches it
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def size(self) -> int:
        """Bytes held: the packets and the decoded pictures' planes."""
        held = sum(len(p.data) for p in self.packets)
        return held + sum(_picture_bytes(f) for f in self.pictures.values())

    def picture_at(self, start: float, frames: Shelf[object]) -> av.VideoFrame | None:
        """The first picture at or after ``start``, decoded unless it was already; None
        when this segment alone cannot give it (the caller's general path then does)."""
        if leading_wanted(self.packets, start):
            return None  # its references are in the segment before
        begin, wanted = span(self.packets, start)
        if wanted is None:
            return None
        target = round(self.packets[wanted].pts * TICKS)
        with self._lock:
            if target not in self.pictures:
                self._decode(begin, wanted, target, frames.budget // SEGMENTS_KEPT)
                frames.resize(self.key, self.size)
            return self.pictures.get(target)

    def _decode(self, begin: int, wanted: int, target: int, budget: int) -> None:
        """Decode up to ``target``: on the parked decoder when it can reach it, else (if it
        fails, or the picture turns out skipped) from the keyframe; the decoder is parked
        again unless drained."""
        parked = PARKED.take(self)
        if parked is not None and parked.reaches(begin, wanted, target):
            self.continued += 1
            with contextlib.suppress(av.FFmpegError):  # a fresh decoder decides
                self._run(parked, wanted, target, budget)
            if target in self.pictures:
                return
        self.decodes += 1
        try:
            self._run(Parked(new_decoder(self.codec), begin, begin), wanted, target, budget)
        except av.FFmpegError as e:
            raise MediaError(
                f"cannot decode the segment holding the thumbnail: {e}", obj=self.ref.url
            ) from e

    def _run(self, parked: Parked, wanted: int, target: int, budget: int) -> None:
        """Send packets until ``target`` is output, keeping the clean pictures output within
        ``budget`` (trimmed as they come, so the decoder's buffer pool, which keeps every
        buffer it ever handed out while it is parked, grows no larger than what is kept);
        park the decoder where it stopped, or drain it when the packets run out first."""
        while parked.position <= wanted or parked.holds(target):
            if parked.position == len(self.packets):
                self._keep(parked, parked.decoder.decode(None), budget, target)
                return  # drained: nothing to park
            self._keep(parked, self._send(parked, wanted), budget, target)
        PARKED.park(self, parked)

    def _send(self, parked: Parked, wanted: int) -> list[av.VideoFrame]:
        # Pictures before the wanted one that nothing refers to need no decoding (nothing
        # later can need them); the wanted one and any after it (sent to get it out of the
        # decoder's reorder delay) are decoded whole.
        p = self.packets[parked.position]
        pts = round(p.pts * TICKS)
        parked.decoder.skip_frame = "NONREF" if parked.position < wanted else "DEFAULT"
        parked.sent.add(pts)
        parked.position += 1
        return parked.decoder.decode(packet(p.data, pts, round(p.dts * TICKS)))

    def _keep(self, parked: Parked, decoded: list[av.VideoFrame], budget: int, target: int) -> None:
        for frame in decoded:
            if frame.pts is None:
                continue
            parked.shown = frame.pts if parked.shown is None else max(parked.shown, frame.pts)
            if not frame.is_corrupt:
                self.pictures.setdefault(frame.pts, frame)
                self._trim(budget, target)

    def _trim(self, budget: int, target: int) -> None:
        """Drop the earliest pictures but the wanted one until the entry fits ``budget``:
        the pictures just before the one served are the likeliest to be asked for next
        (a viewer stepping back from it), the GOP's first ones the least."""
        size = self.size
        for pts in sorted(self.pictures):
            if size <= budget:
                return
            if pts != target:
                size -= _picture_bytes(self.pictures.pop(pts))


def _picture_bytes(frame: av.VideoFrame) -> int:
    return sum(plane.buffer_size for plane in frame.planes)
