"""HLS segments as the scan walks them: plain tuples, made into SegmentRefs only when needed.

The scan (hls_scan.py) builds one tuple per segment of a 24-hour playlist; only the few in the
requested window, the preroll and a run's head become :class:`SegmentRef` objects.
"""

from __future__ import annotations

from pipeline.model import ByteRange, Gap, SegmentRef
from pipeline.storage import join_location

# A PDT this much later than the previous segment's end is a hole in the recording; less is
# rounding (PDTs carry milliseconds, EXTINF often fewer digits).  Under one frame at 60 fps.
HOLE_TOLERANCE = 0.010

# A walked segment as plain values: (uri, start, duration, byte range, the EXT-X-MAP in
# force, playable).  A tuple, not a dataclass: one is built per segment before the window.
Seg = tuple[str, float, float, ByteRange | None, tuple[str, ByteRange | None] | None, bool]


def sub_range(byterange: tuple[int, int | None], same_uri: bool, last_end: int | None) -> ByteRange:
    length, offset = byterange
    if offset is None:  # implicit: continues the previous sub-range of the file
        offset = last_end if last_end is not None and same_uri else 0
    return ByteRange(offset, length)


def segment_ref(
    playlist: str, seg: Seg, discontinuity: bool = False, run_head: SegmentRef | None = None
) -> SegmentRef:
    uri, start, duration, byte_range, init, _ = seg
    init_url, init_range = init or (None, None)
    return SegmentRef(
        url=join_location(playlist, uri),
        start=start,
        duration=duration,
        byte_range=byte_range,
        init_url=init_url,
        init_range=init_range,
        discontinuity=discontinuity,
        run_head=run_head,
    )


def preroll_ref(playlist: str, prev: Seg, start: float) -> SegmentRef | None:
    _, p_start, duration, _, _, playable = prev
    if not playable or abs(p_start + duration - start) > HOLE_TOLERANCE:
        return None
    return segment_ref(playlist, prev)


def add_gap(gaps: list[Gap], start: float, end: float, lo: float, hi: float) -> None:
    start, end = max(start, lo), min(end, hi)
    if end > start:
        gaps.append(Gap(start, end, "gap"))


def merge_gaps(gaps: list[Gap]) -> list[Gap]:
    """Join touching gaps (a run of EXT-X-GAP segments is one hole)."""
    merged: list[Gap] = []
    for gap in gaps:
        if merged and gap.start <= merged[-1].end + HOLE_TOLERANCE:
            last = merged[-1]
            merged[-1] = Gap(last.start, max(last.end, gap.end), last.reason)
        else:
            merged.append(gap)
    return merged
