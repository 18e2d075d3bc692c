"""grab_thumbnail: the JPEG of the first frame at or after res.start.

Only the segment holding that frame is fetched (the next one too when the start falls
after the segment's last frame); decoding starts at the keyframe before the frame, so the
picture is complete, never a half-decoded one.  When the frame is an open-GOP leading
picture (presented before its segment's first keyframe, decoded after it), the segment
before (``Resolution.preroll``) is fetched too and decoded from its last keyframe.  When
the frame is the leading picture of the keyframe that starts the segment after the window
(packagers that give a segment its keyframe's time store it there), no segment of the
window holds it: ``Resolution.postroll`` is fetched then, after the window's segments.

With a ``frames`` shelf (the worker's cache, ``StageContext.frames``), the segment's packets
and the pictures decoded from them stay in memory (``decoded_gop.DecodedSegment``): a second
thumbnail of a picture already decoded is a JPEG encode, with no read and no decode, and
one later in the same GOP continues on the decoder parked where the last one stopped.
Pictures are decoded from the keyframe to the wanted one only, skipping the non-reference
pictures before it (``skip_frame``), which nothing after them can need.

``resolve_thumbnail_point`` resolves the range a thumbnail needs: a short window from the
requested point, widened while it lies inside a gap, so "first frame at or after StartPos"
skips the gap (the CLI and the frame stage both use it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import av

from pipeline.errors import MediaError
from pipeline.manifest import RangeRequest, resolve
from pipeline.manifest.request import MAX_DURATION_MS
from pipeline.media.decoded_gop import cached_segment, load_video, span
from pipeline.media.encode import TICKS, new_decoder, packet
from pipeline.media.jpeg import write_jpeg
from pipeline.media.placement import Placement
from pipeline.media.results import ThumbnailResult
from pipeline.media.source import SegmentFetcher, TimedPacket, TrackDemuxer, leading_wanted
from pipeline.media.timeline import EPS, HOLE_EPS, Timeline
from pipeline.model import Resolution, SegmentRef
from pipeline.storage import BlobReader

if TYPE_CHECKING:
    from pipeline.cache import Shelf

THUMBNAIL_WINDOW_MS = 1000  # a thumbnail needs the frame at StartPos only


def resolve_thumbnail_point(
    reader: BlobReader,
    manifest: str,
    request: RangeRequest,
    *,
    now_ms: int | None = None,
) -> Resolution:
    """The range from ``request``'s start that holds the first frame at or after it.

    The first window is ``request``'s Duration (callers pass ``THUMBNAIL_WINDOW_MS`` when
    the request has none that matters).  While the window holds no frame at or after the
    start and a gap runs to its end, the window doubles (a few manifest reads even for an
    hours-long gap), up to the 24 h request limit.  It stops at the live edge or the end of
    the archive: then the resolution is returned as is, and ``grab_thumbnail`` (or the
    caller's live wait) reports that no frame is there yet.
    """
    res = resolve(reader, manifest, request, now_ms=now_ms)
    while not _frame_after_start(res) and _gap_to_end(res):
        if request.duration_ms >= MAX_DURATION_MS:
            break
        request = replace(request, duration_ms=min(2 * request.duration_ms, MAX_DURATION_MS))
        res = resolve(reader, manifest, request, now_ms=now_ms)
    return res


def _frame_after_start(res: Resolution) -> bool:
    return any(r.start + r.duration > res.start + EPS for r in res.video)


def _gap_to_end(res: Resolution) -> bool:
    """Whether the window ends inside a gap that media may follow (not the live edge)."""
    if res.live_edge is not None and res.live_edge <= res.end + EPS:
        return False
    return any(g.end >= res.end - HOLE_EPS for g in res.gaps)


def grab_thumbnail(
    reader: BlobReader,
    res: Resolution,
    out_path: Path,
    *,
    max_width: int | None = None,
    frames: Shelf[object] | None = None,
    frame_threads: bool = False,
) -> ThumbnailResult:
    """The JPEG of the first frame at or after ``res.start``; ``frames`` keeps the segment's
    packets and decoded pictures for the next thumbnail of it (see the module's doc).

    ``frame_threads``: decode on frame threads, for a process that has the machine to
    itself (``mediaexport thumb``: the keyframe-to-frame run then uses every core, as
    ffmpeg's does); a worker's grabs run side by side and fill the cores already."""
    if max_width is not None and max_width < 2:
        raise MediaError(f"max_width must be at least 2, not {max_width}", obj="max_width")
    out_path = Path(out_path)
    refs = [r for r in res.video if r.start + r.duration > res.start + EPS][:2]
    if res.postroll is not None and len(refs) < 2 and refs and refs[-1] == res.video[-1]:
        refs.append(res.postroll)  # read only if the window's segments lack the frame
    if frames is not None and refs:
        # The common case: the frame is in the first segment and not a leading picture.
        # Anything else takes the path below, which reads the segments again (from the
        # object cache) on a demuxer of its own, so the clock learnt is the usual one.
        cached = cached_segment(frames, reader, refs[0])
        picture = cached.picture_at(res.start, frames)
        if picture is not None:
            return write_jpeg(picture, out_path, max_width)
    return _grab(reader, res, refs, out_path, max_width, frame_threads)


def _grab(
    reader: BlobReader,
    res: Resolution,
    refs: list[SegmentRef],
    out_path: Path,
    max_width: int | None,
    frame_threads: bool,
) -> ThumbnailResult:
    demuxer = TrackDemuxer(SegmentFetcher(reader), want_video=True, want_audio=False)
    earlier: list[TimedPacket] | None = None  # the previous segment's packets, if loaded
    for ref in refs:
        packets, codec = load_video(demuxer, ref, out_of_turn=ref is res.postroll)
        if leading_wanted(packets, res.start):
            # The frame is an open-GOP leading picture: its references are in the segment
            # before, which must be decoded first (from its last keyframe on).
            before = _previous(res, ref)
            if before is None:
                raise MediaError(
                    "the frame at the start is a leading picture whose references lie "
                    "in a segment the manifest does not continue from",
                    obj=ref.url,
                )
            if earlier is None:
                earlier = load_video(demuxer, before, out_of_turn=True)[0]
            packets = earlier + packets
        frame = _first_frame_at(packets, codec, res.start, ref, frame_threads)
        if frame is not None:
            return write_jpeg(frame, out_path, max_width)
        earlier = packets
    raise MediaError(
        f"no frame at or after {res.start:.3f}s in the archive",
        obj=res.video[0].url if res.video else res.manifest,
    )


def _previous(res: Resolution, ref: SegmentRef) -> SegmentRef | None:
    """The segment whose pictures ``ref``'s leading pictures reference, if it continues."""
    if ref is res.postroll:
        return res.video[-1]  # the postroll runs on from it
    i = res.video.index(ref)
    if i == 0:
        return res.preroll
    before = res.video[i - 1]
    if ref.discontinuity or abs(before.start + before.duration - ref.start) > HOLE_EPS:
        return None
    return before


def _first_frame_at(
    packets: list[TimedPacket], codec: str, start: float, ref: SegmentRef, threads: bool
) -> av.VideoFrame | None:
    if not packets or not any(p.pts >= start - EPS for p in packets):
        return None
    begin, wanted = span(packets, start)
    best: av.VideoFrame | None = None
    if wanted is not None:
        target = round(packets[wanted].pts * TICKS)
        run = packets[begin : wanted + 1]
        best = _decode_first(run, codec, start, ref, skip=True, threads=threads)
        if best is None or best.pts != target or best.is_corrupt:
            best = _decode_first(run, codec, start, ref, threads=threads)
        if best is not None and best.pts != target:
            best = None
    if best is None:  # the wanted picture did not decode: fall back to the whole run
        best = _decode_first(packets[begin:], codec, start, ref, threads=threads)
    if best is not None and best.is_corrupt:
        raise MediaError("the thumbnail frame does not decode cleanly", obj=ref.url)
    return best


def _decode_first(
    packets: list[TimedPacket],
    codec: str,
    start: float,
    ref: SegmentRef,
    *,
    skip: bool = False,
    threads: bool = False,
) -> av.VideoFrame | None:
    """The first decoded frame that belongs to a range from ``start`` on (placement.py)."""
    placement = Placement(Timeline(start, math.inf))
    for frame in _decoded(packets, codec, ref, skip=skip, threads=threads):
        t = None if frame.pts is None else frame.pts / TICKS
        if t is not None and placement.place(t, before=math.inf) is not None:
            return frame
    return None


def _decoded(
    packets: list[TimedPacket], codec: str, ref: SegmentRef, *, skip: bool, threads: bool = False
) -> Iterator[av.VideoFrame]:
    """The pictures of ``packets`` decoded in order, then the decoder's delayed ones.

    ``skip``: the non-reference pictures before the last packet (the wanted one) are not
    decoded: no later picture refers to them, so the last one decodes the same.  It is
    set per packet because the wanted picture may be a non-reference one itself.
    """
    decoder = new_decoder(codec)
    if threads:
        decoder.thread_type = "AUTO"  # skip_frame still applies: copied per submitted packet
    last = len(packets) - 1
    try:
        for i, p in enumerate([*packets, None]):
            if skip and i <= last:
                decoder.skip_frame = "NONREF" if i < last else "DEFAULT"
            pkt = None if p is None else packet(p.data, round(p.pts * TICKS), round(p.dts * TICKS))
            yield from decoder.decode(pkt)
    except av.FFmpegError as e:
        raise MediaError(
            f"cannot decode the segment holding the thumbnail: {e}", obj=ref.url
        ) from e
