"""One pass over an HLS *media* playlist that builds objects only for the requested window.

A 24-hour archive lists 43,200 segments; a request needs a handful.  The scan keeps the
running archive time in a few locals and materialises a :class:`SegmentRef` only for the
segments that overlap the window, so resolving costs one cheap loop over the lines; long
PDT-dated playlists are not even walked whole (:mod:`pipeline.manifest.hls_seek`).

Timeline: archive time 0 is the first segment.  With ``EXT-X-PROGRAM-DATE-TIME`` it is the
first segment's wall clock (``hls_tags.wall_clock_anchor``), and every later PDT re-anchors
the segment it belongs to, so a jump in the clock (say after a discontinuity) moves the
timeline and a PDT later than the previous segment's end leaves a hole that becomes a gap.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.errors import MediaError
from pipeline.manifest.hls_segments import (
    HOLE_TOLERANCE,
    Seg,
    add_gap,
    merge_gaps,
    preroll_ref,
    segment_ref,
    sub_range,
)
from pipeline.manifest.hls_tags import (
    BYTERANGE,
    EXTINF,
    PDT,
    Playlist,
    attributes,
    parse_byterange,
    parse_extinf,
    parse_map,
    parse_pdt_ms,
)
from pipeline.model import ByteRange, Gap, SegmentRef

_PDT_LEN = len(PDT)
_EXTINF_LEN = len(EXTINF)
_BYTERANGE_LEN = len(BYTERANGE)

# A PDT this much *earlier* than the running time is EXTINF rounding and re-anchors the
# timeline; a bigger step back would make segments overlap, so the running time is kept.
BACKSTEP_TOLERANCE = 0.5

# playlists shorter than this are walked whole (a walk of 3,000 lines takes about 1 ms)
SEEK_FROM_LINES = 3000


@dataclass(frozen=True, slots=True)
class MediaScan:
    """What one media playlist says about the window [lo, hi)."""

    segments: tuple[SegmentRef, ...]  # playable segments overlapping the window, in order
    gaps: tuple[Gap, ...]  # EXT-X-GAP segments and PDT holes, clipped to the window
    finished: bool  # the playlist will not grow
    end: float  # archive time where the last listed segment ends (0.0 when empty)
    has_segments: bool
    fmp4: bool  # the window's segments have an EXT-X-MAP initialization section
    notes: tuple[str, ...] = ()
    # the playable segment just before the first one, when it runs straight into it (no
    # discontinuity, gap or PDT hole between); None when unknown or there is none
    preroll: SegmentRef | None = None
    # the playable segment just after the last one, when that one runs straight into it
    postroll: SegmentRef | None = None


def scan_media(
    source: Playlist,
    lo: float,
    hi: float,
    epoch_ms_at_zero: int | None,
    *,
    origin: float = 0.0,
    seek_from_lines: int = SEEK_FROM_LINES,
) -> MediaScan:
    """Scan a media playlist; materialise only the segments overlapping [lo, hi).

    ``epoch_ms_at_zero`` maps this playlist's PDTs onto the archive timeline (pass the video
    playlist's anchor when scanning its audio rendition); None ignores PDTs, so the timeline
    is the running sum of EXTINF from the first segment.  ``origin`` is the archive time of
    the first segment (non-zero for an audio rendition that starts before/after the video).

    Long playlists dated by PDTs (``seek_from_lines`` lines or more) are not walked whole:
    :mod:`pipeline.manifest.hls_seek` bisects the PDTs to the segment holding ``lo`` and
    jumps from the window to the last PDT to find the end.  That assumes the PDTs never
    step back (beyond ``BACKSTEP_TOLERANCE``); lines it skips are not validated.

    ``SegmentRef.media_offset`` stays None for TS *and* fMP4: HLS says nothing that ties a
    segment's media timestamps (PES pts, fMP4 ``tfdt``) to the playlist timeline, and
    learning it would cost a read of each segment, so the media work aligns the head of each
    run (``SegmentRef.run_head``) to its start and keeps that offset along the run.
    """
    from pipeline.manifest.hls_seek import (
        block_at,
        can_seek,
        last_pdt_block,
        longest_segment_ms,
        map_before,
    )

    if source.master:
        raise MediaError("line 1: expected a media playlist, got a master", obj=source.location)
    walk = _Walk(source, lo, hi, epoch_ms_at_zero, origin)
    lines = source.lines
    seek = (
        epoch_ms_at_zero is not None
        and source.has_pdt
        and len(lines) >= seek_from_lines
        and can_seek(source)
    )
    begin = 0
    if seek and epoch_ms_at_zero is not None:
        # One segment further back than ``lo`` needs, so that the segment before the
        # window is walked too (``MediaScan.preroll``), as a walk from the top would.
        back = longest_segment_ms(source)
        begin = block_at(source, epoch_ms_at_zero + round(lo * 1000) - back)
        if begin:
            walk.restart(map_before(source, begin))
    stopped = walk.run(begin, stop_after_window=seek)
    if stopped < len(lines):
        # past the window only the end matters: it follows from the last PDT onwards
        tail = last_pdt_block(source)
        if tail > stopped:
            walk.lo = walk.hi = float("inf")
            walk.restart(map_before(source, tail))
            stopped = tail
        walk.run(stopped, stop_after_window=False)
    return walk.result()


class _Walk:
    """The scan's state between runs of the line loop (hot locals live in :meth:`run`)."""

    def __init__(
        self, source: Playlist, lo: float, hi: float, epoch0: int | None, origin: float
    ) -> None:
        self.source, self.lo, self.hi, self.epoch0 = source, lo, hi, epoch0
        self.t = origin  # running archive time: where the next segment starts without a PDT
        self.seen = False  # a segment was walked since the last (re)start
        self.has_segments = False
        self.init: tuple[str, ByteRange | None] | None = None  # the EXT-X-MAP in force
        self.last_uri: str | None = None
        self.last_range_end: int | None = None
        self.carried = False  # a discontinuity tagged on a skipped GAP segment
        self.fmp4 = False
        self.dangling = False  # an EXTINF with no URI after it
        self.discontinuity = self.gap = False  # set by _RARE_TAGS for the next segment
        self.segments: list[SegmentRef] = []
        self.preroll: SegmentRef | None = None
        self.postroll: SegmentRef | None = None
        # run() hands segments starting before this to _take: -inf once the first segment
        # after the window (the postroll, maybe) was walked
        self.take_before = math.inf
        # the last segment walked before the window; a SegmentRef only if it is the preroll
        self.prev: Seg | None = None
        # the first playable segment of the current run (``SegmentRef.run_head``); unknown
        # after a seek until the next discontinuity
        self.head: Seg | None = None
        self.head_pending = True
        self.gaps: list[Gap] = []
        self.notes: list[str] = []

    def restart(self, init: tuple[str, ByteRange | None] | None) -> None:
        """Continue at a segment block found by seeking: its PDT anchors it, no hole before."""
        self.seen = False
        self.init = init
        self.fmp4 = self.fmp4 or init is not None
        self.last_uri = self.last_range_end = None
        self.prev = None
        self.head, self.head_pending = None, False

    def result(self) -> MediaScan:
        if self.dangling:
            self.notes.append(
                f"{self.source.location}: last EXTINF has no segment URI (being written?)"
            )
        return MediaScan(
            segments=tuple(self.segments),
            gaps=tuple(merge_gaps(self.gaps)),
            finished=self.source.finished,
            end=self.t,
            has_segments=self.has_segments,
            fmp4=self.fmp4,
            notes=tuple(self.notes),
            preroll=self.preroll,
            postroll=self.postroll,
        )

    def run(self, begin: int, *, stop_after_window: bool) -> int:
        """Walk lines from ``begin``; return where it stopped (``len(lines)`` at the end).

        With ``stop_after_window`` it stops at the block after the first segment that
        starts at or after ``hi``.  This loop runs once per line of a 24-hour playlist, so
        the per-segment tags (EXTINF, PROGRAM-DATE-TIME, BYTERANGE) and the URI are handled
        inline on locals; the rare tags go through ``_RARE_TAGS``, the few segments inside
        the window and the first one after it (``MediaScan.postroll``) through
        :meth:`_take`, which lowers ``take_before`` to -inf once that one is seen.
        """
        playlist = self.source.location
        lines = self.source.lines
        lo, hi = self.lo, self.hi
        stop_at = hi if stop_after_window else math.inf
        take_before = self.take_before
        t, seen, prev = self.t, self.seen, self.prev
        last_uri, last_range_end = self.last_uri, self.last_range_end
        init = self.init
        self.discontinuity = self.gap = False
        # what the tags so far say about the next segment URI
        duration: float | None = None
        pdt_at: float | None = None  # its PROGRAM-DATE-TIME on the archive timeline
        byterange: tuple[int, int | None] | None = None
        tagged = False  # a rare tag (or another unhandled line) came since the last segment
        discontinuity = is_gap = False
        stopped = len(lines)

        for n, line in enumerate(_from(lines, begin), begin + 1):
            if line[:1] == "#":
                if line.startswith(EXTINF):
                    # inlined: this line comes once per segment (parse_extinf explains errors)
                    comma = line.find(",", _EXTINF_LEN)
                    try:
                        duration = float(
                            line[_EXTINF_LEN:comma] if comma > 0 else line[_EXTINF_LEN:]
                        )
                    except ValueError:
                        duration = -1.0
                    if not 0.0 <= duration < 86400.0:
                        duration = parse_extinf(line, playlist, n)
                elif line.startswith(PDT):
                    pdt_at = self._pdt(line, n)
                elif line.startswith(BYTERANGE):
                    byterange = parse_byterange(line[_BYTERANGE_LEN:], playlist, n)
                else:
                    self._rare_tag(line, n, seen)
                    tagged = True
                continue
            uri = line.strip()
            if not uri:
                continue
            if duration is None:
                raise MediaError(f"line {n}: segment {uri!r} has no EXTINF before it", obj=playlist)
            if tagged:
                discontinuity, is_gap, init = self.discontinuity, self.gap, self.init
                self.discontinuity = self.gap = tagged = False

            start = t if pdt_at is None else self._anchored(pdt_at, t, seen, n)
            if byterange is None:
                seg_range = last_range_end = None
            else:
                seg_range = sub_range(byterange, uri == last_uri, last_range_end)
                last_range_end = seg_range.offset + seg_range.length
            last_uri = uri
            if self.head_pending and not is_gap:  # set again by EXT-X-DISCONTINUITY
                self.head = (uri, start, duration, seg_range, init, True)
                self.head_pending = False

            t = start + duration
            if t <= lo:
                prev = (uri, start, duration, seg_range, init, not is_gap)
            elif start < take_before:
                seg = (uri, start, duration, seg_range, init, not is_gap)
                take_before = self._take(seg, discontinuity, prev)
            seen = True
            duration = pdt_at = byterange = None
            discontinuity = is_gap = False
            if start >= stop_at:
                stopped = n  # index of the next line: a block boundary
                break

        self.t, self.seen, self.prev = t, seen, prev
        self.has_segments |= seen
        self.last_uri, self.last_range_end = last_uri, last_range_end
        self.dangling = duration is not None
        return stopped

    def _rare_tag(self, line: str, n: int, seen: bool) -> None:
        colon = line.find(":")
        tag, value = (line[:colon], line[colon + 1 :]) if colon > 0 else (line.rstrip(), "")
        handler = _RARE_TAGS.get(tag)
        if handler is not None:
            self.seen = seen  # run() keeps it in a local; EXT-X-MEDIA-SEQUENCE asks
            handler(self, value, n)

    def _pdt(self, line: str, n: int) -> float | None:
        """A PROGRAM-DATE-TIME on the archive timeline (None without a wall clock)."""
        if self.epoch0 is None:
            return None
        return (parse_pdt_ms(line[_PDT_LEN:], self.source.location, n) - self.epoch0) / 1000.0

    def _anchored(self, pdt_at: float, t: float, seen: bool, n: int) -> float:
        """Where a segment dated by a PDT starts: at its PDT, unless that steps back too far."""
        if not seen or pdt_at >= t - BACKSTEP_TOLERANCE:
            if seen and pdt_at > t + HOLE_TOLERANCE:
                # the recording has a hole: nothing was written between t and the PDT
                add_gap(self.gaps, t, pdt_at, self.lo, self.hi)
            return pdt_at
        if len(self.notes) < 8:
            self.notes.append(
                f"{self.source.location} line {n}: PROGRAM-DATE-TIME steps back "
                f"{t - pdt_at:.3f} s; kept the running time so segments do not overlap"
            )
        return t

    def _take(self, seg: Seg, discontinuity: bool, prev: Seg | None) -> float:
        """A segment overlapping the window: a gap, or a SegmentRef (and maybe the preroll).

        Called for the first segment after the window too, which may be the postroll.
        Returns the start before which the walk still calls this: -inf once past the window.
        """
        _, start, duration, _, _, playable = seg
        if start >= self.hi:
            self._postroll(seg, discontinuity or self.carried)
            return self.take_before
        if not playable:
            add_gap(self.gaps, start, start + duration, self.lo, self.hi)
            self.carried = self.carried or discontinuity
            return self.take_before
        discontinuity = discontinuity or self.carried
        if not self.segments and prev is not None and not discontinuity:
            self.preroll = preroll_ref(self.source.location, prev, start)
        # The run's head, when it is another segment: the media work clocks the run from it.
        head, run_head = self.head, None
        if head is not None and (head[0], head[3]) != (seg[0], seg[3]):
            run_head = segment_ref(self.source.location, head)
        self.segments.append(segment_ref(self.source.location, seg, discontinuity, run_head))
        self.carried = False
        return self.take_before

    def _postroll(self, seg: Seg, discontinuity: bool) -> None:
        """The first segment after the window: the postroll if the last one runs into it."""
        self.take_before = -math.inf
        _, start, _, _, _, playable = seg
        if not self.segments or discontinuity or not playable:
            return
        last = self.segments[-1]
        if abs(last.start + last.duration - start) <= HOLE_TOLERANCE:
            self.postroll = segment_ref(self.source.location, seg)


def _from(lines: list[str], begin: int) -> list[str]:
    return lines[begin:] if begin else lines  # no copy of a whole day's lines for a walk


# The tags that come seldom (once per playlist, or per discontinuity), by name; each sets
# what applies to the next segment on the walk, or checks the playlist.
def _discontinuity(walk: _Walk, value: str, n: int) -> None:
    walk.discontinuity = True
    walk.head_pending = True  # the next playable segment heads a new run


def _gap(walk: _Walk, value: str, n: int) -> None:
    walk.gap = True


def _map(walk: _Walk, value: str, n: int) -> None:
    walk.init = parse_map(value, walk.source.location, n)
    walk.fmp4 = True


def _media_sequence(walk: _Walk, value: str, n: int) -> None:
    playlist = walk.source.location
    value = value.strip()
    if not value.isdigit():
        raise MediaError(f"line {n}: bad EXT-X-MEDIA-SEQUENCE {value!r}", obj=playlist)
    if walk.seen:
        raise MediaError(f"line {n}: EXT-X-MEDIA-SEQUENCE after the first segment", obj=playlist)
    if int(value) > 0 and walk.epoch0 is None:
        # a sliding window dropped earlier segments; without a wall clock nothing says how
        # long they were, so relative times can only count from what is still listed
        walk.notes.append(
            f"{playlist}: starts at media sequence {value}; without PROGRAM-DATE-TIME, "
            "StartTime counts from the first segment still listed"
        )


def _key(walk: _Walk, value: str, n: int) -> None:
    method = attributes(value).get("METHOD", "NONE")
    if method != "NONE":
        raise MediaError(
            f"line {n}: encrypted segments (EXT-X-KEY METHOD={method}) are not supported",
            obj=walk.source.location,
        )


_RARE_TAGS: dict[str, Callable[[_Walk, str, int], None]] = {
    "#EXT-X-DISCONTINUITY": _discontinuity,
    "#EXT-X-GAP": _gap,
    "#EXT-X-MAP": _map,
    "#EXT-X-MEDIA-SEQUENCE": _media_sequence,
    "#EXT-X-KEY": _key,
}
