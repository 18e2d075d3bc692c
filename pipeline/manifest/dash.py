"""DASH MPD → the segments that cover a requested range on the archive timeline.

Archive time 0 is ``MPD@availabilityStartTime`` (the wall-clock anchor); a static MPD
without it has no wall clock and is addressed by StartTime only.  Periods start at
``Period@start`` or where the previous Period ends; a media time ``t`` of a Period maps to
archive time ``period_start + (t - presentationTimeOffset) / timescale``.
"""

from __future__ import annotations

import math
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from pipeline.errors import MediaError
from pipeline.manifest.dash_segments import Scope, TrackSegments, track_segments
from pipeline.manifest.dash_select import choose_representations, int_attr, track_info
from pipeline.manifest.dash_time import parse_datetime_ms, parse_duration
from pipeline.manifest.request import RangeRequest
from pipeline.model import Gap, Resolution, SegmentRef, TrackInfo
from pipeline.storage import BlobReader, join_location

_EPS = 1e-3  # s; spans shorter than this are float noise, not gaps


@dataclass(frozen=True)
class _Track:
    segments: TrackSegments
    info: TrackInfo


@dataclass(frozen=True)
class _Period:
    index: int
    start: float
    end: float | None
    video: _Track
    audio: _Track | None
    audio_muxed: bool


@dataclass(frozen=True)
class _Mpd:
    """What the MPD element says about the whole presentation."""

    dynamic: bool
    ast_ms: int | None  # availabilityStartTime: the wall clock of archive time 0
    duration: float | None  # mediaPresentationDuration
    tsbd: float | None  # timeShiftBufferDepth
    now: float | None  # archive time of the wall clock, for a dynamic MPD
    notes: tuple[str, ...]


@dataclass(frozen=True)
class _Extent:
    """Where the listed media lies on the archive timeline."""

    start: float
    edge: float
    is_live: bool
    notes: tuple[str, ...]


def resolve_dash(
    reader: BlobReader,
    manifest: str,
    data: bytes,
    request: RangeRequest,
    *,
    now_ms: int | None = None,
) -> Resolution:
    """Resolve ``request`` against the MPD ``data`` read from ``manifest``.

    ``now_ms`` is the wall clock for dynamic MPDs with ``@duration`` numbering (default: now).
    """
    root, ns = _root(data, manifest)
    mpd = _mpd(root, manifest, now_ms)
    periods = _periods(root, ns, manifest, reader, mpd.duration, mpd.now)
    window = request.window(mpd.ast_ms)
    extent = _extent(periods, mpd, manifest)
    window.check_overlaps(
        extent.start, extent.edge, is_live=extent.is_live, obj=manifest, slack=_EPS
    )
    lo, hi = max(window.start, extent.start), min(window.end, extent.edge)
    video, audio, preroll, postroll = _collect(periods, lo, hi, extent.start)
    info_period = _period_at(periods, lo)
    return Resolution(
        manifest=manifest,
        kind="dash",
        clock=window.clock,
        epoch_ms_at_zero=mpd.ast_ms,
        start=window.start,
        end=window.end,
        video=tuple(video),
        audio=tuple(audio),
        video_track=info_period.video.info,
        audio_track=info_period.audio.info if info_period.audio else None,
        audio_muxed=info_period.audio_muxed,
        gaps=window.with_missing(_gaps(video, lo, hi), extent.start),
        is_live=extent.is_live,
        live_edge=extent.edge,
        archive_start=extent.start,
        notes=mpd.notes + extent.notes,
        preroll=preroll,
        postroll=postroll,
    )


def _root(data: bytes, manifest: str) -> tuple[ET.Element, str]:
    """The MPD element and its namespace prefix (``{urn:...}`` or empty)."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise MediaError(f"MPD is not well-formed XML: {e}", obj=manifest) from None
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    if root.tag != ns + "MPD":
        raise MediaError(f"root element is <{root.tag[len(ns) :]}>, not <MPD>", obj=manifest)
    return root, ns


def _mpd(root: ET.Element, manifest: str, now_ms: int | None) -> _Mpd:
    dynamic = root.get("type", "static") == "dynamic"
    ast_text = root.get("availabilityStartTime")
    ast_ms = None
    if ast_text:
        ast_ms = parse_datetime_ms(ast_text, obj=manifest, what="MPD@availabilityStartTime")
    if dynamic and ast_ms is None:
        raise MediaError("a dynamic MPD needs MPD@availabilityStartTime", obj=manifest)
    mpd_duration = _duration_attr(root, "mediaPresentationDuration", manifest, "MPD")
    tsbd = _duration_attr(root, "timeShiftBufferDepth", manifest, "MPD")
    now = None
    if dynamic and ast_ms is not None:
        now = ((time.time() * 1000 if now_ms is None else now_ms) - ast_ms) / 1000.0
    notes = tuple(
        f"MPD@{attr}={root.get(attr)}"
        for attr in ("publishTime", "minimumUpdatePeriod")
        if root.get(attr)
    )
    return _Mpd(dynamic, ast_ms, mpd_duration, tsbd, now, notes)


def _extent(periods: list[_Period], mpd: _Mpd, manifest: str) -> _Extent:
    """The archive's start and edge: the first and last video segment, then the MPD's limits."""
    filled = [p for p in periods if len(p.video.segments.timeline)]
    if filled:
        first, last = filled[0].video.segments, filled[-1].video.segments
        start = first.archive_time(first.timeline.start(0))
        edge = last.archive_time(last.timeline.end(len(last.timeline) - 1))
        if filled[-1].end is not None:
            # A nominal @duration slot may run past the Period's end; the media does not.
            edge = min(edge, filled[-1].end)
    elif mpd.dynamic:
        start = edge = periods[0].start
    else:
        raise MediaError("the MPD lists no video segments", obj=manifest)
    notes: tuple[str, ...] = ()
    if mpd.dynamic and mpd.tsbd is not None:
        start = max(start, _first_available(filled, edge - mpd.tsbd))
        notes = (f"timeShiftBufferDepth keeps archive time {start:.3f}s onwards",)
    ended = mpd.duration is not None and edge >= mpd.duration - _EPS
    is_live = mpd.dynamic and not ended
    if is_live:
        # A live clip can only be delivered where both tracks exist: audio segments are
        # published on their own (AAC frame) grid and may trail the video, as HLS does it.
        edge = min(edge, _audio_edge(periods[-1]))
    return _Extent(start, edge, is_live, notes)


def _collect(
    periods: list[_Period], lo: float, hi: float, archive_start: float
) -> tuple[list[SegmentRef], list[SegmentRef], SegmentRef | None, SegmentRef | None]:
    """Video and audio refs covering [lo, hi) across Periods, and the video pre/postroll."""
    video: list[SegmentRef] = []
    audio: list[SegmentRef] = []
    preroll = postroll = None
    for p in periods:
        p_lo, p_hi = max(lo, p.start), min(hi, math.inf if p.end is None else p.end)
        if p_lo >= p_hi:
            continue
        if not video:
            preroll = _preroll(p.video.segments, p_lo, archive_start)
        video.extend(_refs(p.video.segments, p_lo, p_hi, bool(video)))
        postroll = _postroll(p.video.segments, p_hi, p.end)  # the last Period's counts
        if p.audio is not None:
            audio.extend(_refs(p.audio.segments, p_lo, p_hi, bool(audio)))
    return video, audio, preroll, postroll


def _refs(seg: TrackSegments, lo: float, hi: float, after_other: bool) -> list[SegmentRef]:
    """SegmentRefs from the segment holding ``lo`` through the last one starting before ``hi``."""
    tl = seg.timeline
    i0 = tl.containing_or_after(seg.ticks(lo))
    i1 = tl.before(seg.ticks(hi))
    # A new Period restarts the media timeline; tell the demuxer side.
    return [_ref(seg, i, after_other and i == i0) for i in range(i0, i1 + 1)]


def _ref(seg: TrackSegments, i: int, discontinuity: bool = False) -> SegmentRef:
    url, byte_range = seg.locate(i)
    return SegmentRef(
        url=url,
        start=seg.archive_time(seg.timeline.start(i)),
        duration=seg.timeline.duration(i) / seg.timescale,
        byte_range=byte_range,
        init_url=seg.init_url,
        init_range=seg.init_range,
        media_offset=seg.media_offset,
        discontinuity=discontinuity,
    )


def _preroll(seg: TrackSegments, lo: float, archive_start: float) -> SegmentRef | None:
    """The segment before the one holding ``lo`` in the same Period, if it runs into it."""
    tl = seg.timeline
    i0 = tl.containing_or_after(seg.ticks(lo))
    if i0 <= 0 or i0 >= len(tl):
        return None
    # A hole between the two (a SegmentTimeline gap) breaks the reference chain, and a
    # segment that left the time-shift buffer may be gone.
    if abs(tl.end(i0 - 1) - tl.start(i0)) > _EPS * seg.timescale:
        return None
    if seg.archive_time(tl.start(i0 - 1)) < archive_start - _EPS:
        return None
    return _ref(seg, i0 - 1)


def _postroll(seg: TrackSegments, hi: float, period_end: float | None) -> SegmentRef | None:
    """The segment after the last one starting before ``hi``, if it runs on from it.

    Only within the Period (a new one restarts the media timeline) and among the listed
    segments (a live MPD lists only those already written).
    """
    tl = seg.timeline
    i = tl.before(seg.ticks(hi)) + 1
    if i <= 0 or i >= len(tl):
        return None
    if abs(tl.end(i - 1) - tl.start(i)) > _EPS * seg.timescale:
        return None
    if period_end is not None and seg.archive_time(tl.start(i)) >= period_end - _EPS:
        return None  # a nominal @duration slot past the Period's end
    return _ref(seg, i)


def _gaps(video: list[SegmentRef], lo: float, hi: float) -> list[Gap]:
    gaps = []
    cursor = lo
    for ref in video:
        if ref.start > cursor + _EPS:
            gaps.append(Gap(cursor, min(ref.start, hi), "gap"))
        cursor = max(cursor, ref.start + ref.duration)
        if cursor >= hi:
            break
    if cursor < hi - _EPS:
        gaps.append(Gap(cursor, hi, "gap"))
    return [g for g in gaps if g.end > g.start + _EPS]


def _first_available(periods: list[_Period], t: float) -> float:
    """Archive start of the first segment still in the time-shift buffer (ending after t)."""
    for p in periods:
        seg = p.video.segments
        i = seg.timeline.containing_or_after(seg.ticks(t))
        if i < len(seg.timeline):
            return seg.archive_time(seg.timeline.start(i))
    return t


def _audio_edge(period: _Period) -> float:
    """Archive time where the period's audio ends (its start before any audio segment)."""
    if period.audio is None or period.audio_muxed:
        return math.inf
    seg = period.audio.segments
    if not len(seg.timeline):
        return period.start
    return seg.archive_time(seg.timeline.end(len(seg.timeline) - 1))


def _period_at(periods: list[_Period], t: float) -> _Period:
    best = periods[0]
    for p in periods:
        if p.start <= t + _EPS:
            best = p
    return best


def _duration_attr(el: ET.Element, name: str, manifest: str, tag: str) -> float | None:
    value = el.get(name)
    if value is None:
        return None
    return parse_duration(value, obj=manifest, what=f"{tag}@{name}")


def _with_base(base: str, el: ET.Element, ns: str) -> str:
    ref_el = el.find(ns + "BaseURL")  # several BaseURLs are alternatives: take the first
    if ref_el is None or not (ref_el.text or "").strip():
        return base
    ref = (ref_el.text or "").strip()
    joined = join_location(base, ref)
    # join_location normalises a trailing slash away; keep it so that later relative
    # references resolve inside the directory rather than beside it.
    return joined + "/" if ref.endswith("/") and not joined.endswith("/") else joined


def _periods(
    root: ET.Element,
    ns: str,
    manifest: str,
    reader: BlobReader,
    mpd_duration: float | None,
    now: float | None,
) -> list[_Period]:
    elements = root.findall(ns + "Period")
    if not elements:
        raise MediaError("the MPD has no Period", obj=manifest)
    mpd_base = _with_base(manifest, root, ns)
    out: list[_Period] = []
    implied_start: float | None = 0.0
    for k, el in enumerate(elements):
        where = f"Period {el.get('id', k)!r}"
        start = _duration_attr(el, "start", manifest, where)
        if start is None:
            if implied_start is None:
                raise MediaError(f"{where}@start is missing and cannot be implied", obj=manifest)
            start = implied_start
        duration = _duration_attr(el, "duration", manifest, where)
        end = None if duration is None else start + duration
        if end is None and k + 1 < len(elements) and elements[k + 1].get("start"):
            nxt = elements[k + 1].get("start", "")
            end = parse_duration(nxt, obj=manifest, what=f"Period {k + 1}@start")
        if end is None and k + 1 == len(elements) and mpd_duration is not None:
            end = mpd_duration
        period = _period(el, k, ns, manifest, reader, _with_base(mpd_base, el, ns), start, end, now)
        out.append(period)
        if end is not None:
            implied_start = end
        else:
            seg = period.video.segments
            n = len(seg.timeline)
            implied_start = seg.archive_time(seg.timeline.end(n - 1)) if n else None
    return out


def _period(
    el: ET.Element,
    k: int,
    ns: str,
    manifest: str,
    reader: BlobReader,
    base: str,
    start: float,
    end: float | None,
    now: float | None,
) -> _Period:
    where = f"Period {el.get('id', k)!r}"
    choice = choose_representations(el, ns)
    if choice.video is None:
        raise MediaError(f"{where} has no video AdaptationSet with a Representation", obj=manifest)

    def track(aset: ET.Element, rep: ET.Element, kind: str) -> _Track:
        rep_id = rep.get("id")
        if not rep_id:
            raise MediaError(f"{where}: a {kind} Representation has no @id", obj=manifest)
        scope = Scope(
            manifest=manifest,
            ns=ns,
            chain=(el, aset, rep),
            base=_with_base(_with_base(base, aset, ns), rep, ns),
            rep_id=rep_id,
            bandwidth=int_attr(aset, rep, "bandwidth"),
            period_start=start,
            period_end=end,
            now=now,
        )
        return _Track(track_segments(scope, reader), track_info(aset, rep, ns, kind))

    audio = None if choice.audio is None else track(*choice.audio, "audio")
    video = track(*choice.video, "video")
    muxed = audio is None and "mp4a" in video.info.codec
    return _Period(k, start, end, video, audio, muxed)
