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

from dataclasses import dataclass

from pipeline.errors import MediaError
from pipeline.manifest.hls_tags import (
    BYTERANGE,
    EXTINF,
    MAP,
    PDT,
    Playlist,
    attributes,
    parse_byterange,
    parse_extinf,
    parse_map,
    parse_pdt_ms,
)
from pipeline.model import ByteRange, Gap, SegmentRef
from pipeline.storage import join_location

_PDT_LEN = len(PDT)
_EXTINF_LEN = len(EXTINF)
_BYTERANGE_LEN = len(BYTERANGE)

# A PDT this much later than the previous segment's end is a hole in the recording; less is
# rounding (PDTs carry milliseconds, EXTINF often fewer digits).  Under one frame at 60 fps.
HOLE_TOLERANCE = 0.010
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
        self.source = source
        self.lo = lo
        self.hi = hi
        self.epoch0 = epoch0
        self.t = origin  # running archive time: where the next segment starts without a PDT
        self.seen = False  # a segment was walked since the last (re)start
        self.has_segments = False
        self.init: tuple[str, ByteRange | None] | None = None
        self.last_uri: str | None = None
        self.last_range_end: int | None = None
        self.carried = False  # a discontinuity tagged on a skipped GAP segment
        self.fmp4 = False
        self.dangling = False  # an EXTINF with no URI after it
        self.segments: list[SegmentRef] = []
        self.preroll: SegmentRef | None = None
        # the last segment walked before the window, as plain values (uri, start, duration,
        # byte range, init, playable); a SegmentRef is built only for the one that is needed
        self.prev: _Prev | None = None
        # the first playable segment of the current run (``SegmentRef.run_head``); unknown
        # after a seek until the next discontinuity
        self.head: _Prev | None = None
        self.head_pending = True
        self.gaps: list[Gap] = []
        self.notes: list[str] = []

    def restart(self, init: tuple[str, ByteRange | None] | None) -> None:
        """Continue at a segment block found by seeking: its PDT anchors it, no hole before."""
        self.seen = False
        self.init = init
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
            gaps=tuple(_merge(self.gaps)),
            finished=self.source.finished,
            end=self.t,
            has_segments=self.has_segments,
            fmp4=self.fmp4,
            notes=tuple(self.notes),
            preroll=self.preroll,
        )

    def run(self, begin: int, *, stop_after_window: bool) -> int:
        """Walk lines from ``begin``; return where it stopped (``len(lines)`` at the end).

        With ``stop_after_window`` it stops at the block after the first segment that
        starts at or after ``hi``.
        """
        playlist = self.source.location
        lines = self.source.lines
        lo, hi, epoch0 = self.lo, self.hi, self.epoch0
        use_pdt = epoch0 is not None
        t, seen = self.t, self.seen
        segments, gaps = self.segments, self.gaps
        init_url, init_range = self.init if self.init else (None, None)
        last_uri, last_range_end, carried = self.last_uri, self.last_range_end, self.carried
        prev = self.prev
        head, head_pending = self.head, self.head_pending
        fmp4 = self.fmp4 or init_url is not None
        # state that applies to the next segment URI
        duration: float | None = None
        pdt_ms: int | None = None
        discontinuity = is_gap = False
        byterange: tuple[int, int | None] | None = None
        stopped = len(lines)

        for n, line in enumerate(lines[begin:] if begin else lines, begin + 1):
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
                    if use_pdt:
                        pdt_ms = parse_pdt_ms(line[_PDT_LEN:], playlist, n)
                elif line.startswith(BYTERANGE):
                    byterange = parse_byterange(line[_BYTERANGE_LEN:], playlist, n)
                elif line.startswith("#EXT-X-DISCONTINUITY") and not line.startswith(
                    "#EXT-X-DISCONTINUITY-SEQUENCE"
                ):
                    discontinuity = True
                elif line.startswith("#EXT-X-GAP"):
                    is_gap = True
                elif line.startswith(MAP):
                    init_url, init_range = parse_map(line[len(MAP) :], playlist, n)
                    fmp4 = True
                elif line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
                    _media_sequence(line, playlist, n, seen, self.notes, use_pdt)
                elif line.startswith("#EXT-X-KEY:"):
                    _check_key(line, playlist, n)
                continue
            uri = line.strip()
            if not uri:
                continue
            if duration is None:
                raise MediaError(f"line {n}: segment {uri!r} has no EXTINF before it", obj=playlist)

            start = t
            if pdt_ms is not None and epoch0 is not None:
                anchored = (pdt_ms - epoch0) / 1000.0
                if not seen or anchored >= t - BACKSTEP_TOLERANCE:
                    if seen and anchored > t + HOLE_TOLERANCE:
                        # the recording has a hole: nothing was written between t and the PDT
                        _add_gap(gaps, t, anchored, lo, hi)
                    start = anchored
                elif len(self.notes) < 8:
                    self.notes.append(
                        f"{playlist} line {n}: PROGRAM-DATE-TIME steps back "
                        f"{t - anchored:.3f} s; kept the running time so segments do not overlap"
                    )
            end = start + duration

            seg_range: ByteRange | None = None
            if byterange is not None:
                length, offset = byterange
                if offset is None:  # implicit: continues the previous sub-range of the file
                    offset = last_range_end if last_range_end is not None and uri == last_uri else 0
                seg_range = ByteRange(offset, length)
                last_range_end = offset + length
            else:
                last_range_end = None
            last_uri = uri
            if discontinuity:
                head_pending = True
            if head_pending and not is_gap:
                head = (uri, start, duration, seg_range, (init_url, init_range), True)
                head_pending = False

            if end > lo and start < hi:
                if is_gap:
                    _add_gap(gaps, start, end, lo, hi)
                    carried = carried or discontinuity
                else:
                    if not segments and prev is not None and not (discontinuity or carried):
                        self.preroll = _preroll(playlist, prev, start)
                    segments.append(
                        SegmentRef(
                            url=join_location(playlist, uri),
                            start=start,
                            duration=duration,
                            byte_range=seg_range,
                            init_url=init_url,
                            init_range=init_range,
                            discontinuity=discontinuity or carried,
                            run_head=_run_head(playlist, head, uri, seg_range),
                        )
                    )
                    carried = False
            elif end <= lo:
                prev = (uri, start, duration, seg_range, (init_url, init_range), not is_gap)
            t = end
            seen = True
            duration = None
            pdt_ms = None
            discontinuity = is_gap = False
            byterange = None
            if stop_after_window and start >= hi:
                stopped = n  # index of the next line: a block boundary
                break

        self.t, self.seen = t, seen
        self.has_segments = self.has_segments or seen
        self.init = (init_url, init_range) if init_url is not None else None
        self.last_uri, self.last_range_end, self.carried = last_uri, last_range_end, carried
        self.prev = prev
        self.head, self.head_pending = head, head_pending
        self.fmp4 = fmp4
        self.dangling = duration is not None
        return stopped


_Prev = tuple[str, float, float, ByteRange | None, tuple[str | None, ByteRange | None], bool]


def _preroll(playlist: str, prev: _Prev, start: float) -> SegmentRef | None:
    uri, p_start, duration, byte_range, (init_url, init_range), playable = prev
    if not playable or abs(p_start + duration - start) > HOLE_TOLERANCE:
        return None
    return SegmentRef(
        url=join_location(playlist, uri),
        start=p_start,
        duration=duration,
        byte_range=byte_range,
        init_url=init_url,
        init_range=init_range,
    )


def _run_head(
    playlist: str, head: _Prev | None, uri: str, byte_range: ByteRange | None
) -> SegmentRef | None:
    if head is None or (head[0] == uri and head[3] == byte_range):
        return None
    h_uri, h_start, h_duration, h_range, (h_init, h_init_range), _ = head
    return SegmentRef(
        url=join_location(playlist, h_uri),
        start=h_start,
        duration=h_duration,
        byte_range=h_range,
        init_url=h_init,
        init_range=h_init_range,
    )


def _media_sequence(
    line: str, playlist: str, n: int, seen: bool, notes: list[str], use_pdt: bool
) -> None:
    value = line[len("#EXT-X-MEDIA-SEQUENCE:") :].strip()
    if not value.isdigit():
        raise MediaError(f"line {n}: bad EXT-X-MEDIA-SEQUENCE {value!r}", obj=playlist)
    if seen:
        raise MediaError(f"line {n}: EXT-X-MEDIA-SEQUENCE after the first segment", obj=playlist)
    if int(value) > 0 and not use_pdt:
        # a sliding window dropped earlier segments; without a wall clock nothing says how
        # long they were, so relative times can only count from what is still listed
        notes.append(
            f"{playlist}: starts at media sequence {value}; without PROGRAM-DATE-TIME, "
            "StartTime counts from the first segment still listed"
        )


def _check_key(line: str, playlist: str, n: int) -> None:
    method = attributes(line[len("#EXT-X-KEY:") :]).get("METHOD", "NONE")
    if method != "NONE":
        raise MediaError(
            f"line {n}: encrypted segments (EXT-X-KEY METHOD={method}) are not supported",
            obj=playlist,
        )


def _add_gap(gaps: list[Gap], start: float, end: float, lo: float, hi: float) -> None:
    start, end = max(start, lo), min(end, hi)
    if end > start:
        gaps.append(Gap(start, end, "gap"))


def _merge(gaps: list[Gap]) -> list[Gap]:
    """Join touching gaps (a run of EXT-X-GAP segments is one hole)."""
    merged: list[Gap] = []
    for gap in gaps:
        if merged and gap.start <= merged[-1].end + HOLE_TOLERANCE:
            last = merged[-1]
            merged[-1] = Gap(last.start, max(last.end, gap.end), last.reason)
        else:
            merged.append(gap)
    return merged
