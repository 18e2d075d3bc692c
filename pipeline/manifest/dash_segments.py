"""Where one Representation's segments are and when they play, for every addressing mode.

SegmentTemplate (SegmentTimeline or ``@duration``), SegmentList and SegmentBase (sidx) all
become a :class:`Timeline` plus a function from segment index to location and byte range.
Attributes inherit Period → AdaptationSet → Representation (the most specific wins).
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.errors import MediaError
from pipeline.manifest.dash_timeline import Timeline, timeline_from_s
from pipeline.manifest.sidx import parse_sidx
from pipeline.model import ByteRange
from pipeline.storage import BlobReader, join_location

_TEMPLATE_ID = re.compile(r"\$(\w+)?(%0?\d*[diuxX])?\$")


@dataclass(frozen=True)
class TrackSegments:
    """One Representation in one Period: timing plus addressing."""

    timeline: Timeline
    timescale: int
    pto: float  # presentationTimeOffset in the timeline's timescale
    period_start: float  # archive time (s) of the Period start
    locate: Callable[[int], tuple[str, ByteRange | None]]
    init_url: str | None
    init_range: ByteRange | None

    def archive_time(self, ticks: float) -> float:
        return self.period_start + (ticks - self.pto) / self.timescale

    def ticks(self, archive_time: float) -> float:
        # Rounded so that a request exactly on a segment boundary is not pushed a hair
        # into the previous segment by float error.
        return round((archive_time - self.period_start) * self.timescale + self.pto, 3)

    @property
    def media_offset(self) -> float:
        """archive_time = tfdt_seconds + media_offset."""
        return self.period_start - self.pto / self.timescale


@dataclass(frozen=True)
class Scope:
    """The elements and context one Representation's segments are read from."""

    manifest: str
    ns: str
    chain: tuple[ET.Element, ...]  # Period, AdaptationSet, Representation
    base: str  # resolved BaseURL: a location; a directory keeps its trailing "/"
    rep_id: str
    bandwidth: int
    period_start: float
    period_end: float | None  # archive time (s); None while open
    now: float | None  # archive time (s) of the wall clock, for live MPDs

    def where(self) -> str:
        return f"Representation {self.rep_id!r}"


def compile_template(
    template: str, scope: Scope, what: str
) -> Callable[[int | None, int | None], str]:
    """``$Identifier%0Nd$`` template → function (number, time) → name.

    Split once per Representation, so that filling in tens of thousands of names is cheap.
    """
    parts: list[str | tuple[str, str]] = []
    pos = 0
    for m in _TEMPLATE_ID.finditer(template):
        parts.append(template[pos : m.start()])
        pos = m.end()
        name, fmt = m.group(1), m.group(2) or "%d"
        if name is None:
            parts.append("$")
        elif name == "RepresentationID":
            parts.append(scope.rep_id)
        elif name == "Bandwidth":
            parts.append(fmt % scope.bandwidth)
        elif name in ("Number", "Time"):
            parts.append((name, fmt))
        else:
            raise MediaError(
                f"{what}: template identifier ${name}$ is not supported ({scope.where()})",
                obj=scope.manifest,
            )
    parts.append(template[pos:])

    def fill(number: int | None, time: int | None) -> str:
        out = []
        for part in parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = number if part[0] == "Number" else time
            if value is None:
                raise MediaError(
                    f"{what}: ${part[0]}$ cannot be used here ({scope.where()})",
                    obj=scope.manifest,
                )
            out.append(part[1] % value)
        return "".join(out)

    return fill


def location_joiner(base: str) -> Callable[[str], str]:
    """``join_location(base, ref)`` with a shortcut for plain relative names.

    Normalising a path per segment dominates when a day's worth of names is built; a name
    without ``.``/``..`` parts, empty parts or a scheme joins by concatenation to the same
    result.
    """
    placeholder = join_location(base, "_")
    prefix = placeholder[:-1]

    def join(ref: str) -> str:
        if ref and ref[0] not in "/." and "//" not in ref and "/." not in ref and ":" not in ref:
            return prefix + ref
        return join_location(base, ref)

    return join


def parse_range(value: str, what: str, scope: Scope) -> ByteRange:
    m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", value)
    if not m or int(m.group(2)) < int(m.group(1)):
        raise MediaError(f"{what} {value!r} is not a byte range 'first-last'", obj=scope.manifest)
    first, last = int(m.group(1)), int(m.group(2))
    return ByteRange(first, last - first + 1)


class _Merged:
    """One segment-info element kind across the levels where it appears."""

    def __init__(self, elements: list[ET.Element], ns: str) -> None:
        self.elements = elements  # most specific first
        self.ns = ns

    def attr(self, name: str) -> str | None:
        for el in self.elements:
            value = el.get(name)
            if value is not None:
                return value
        return None

    def int_attr(self, name: str, default: int | None, scope: Scope, tag: str) -> int | None:
        value = self.attr(name)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise MediaError(
                f"{tag}@{name} {value!r} is not an integer", obj=scope.manifest
            ) from None

    def child(self, name: str) -> ET.Element | None:
        for el in self.elements:
            found = el.find(self.ns + name)
            if found is not None:
                return found
        return None


_KINDS = ("SegmentTemplate", "SegmentList", "SegmentBase")


def track_segments(scope: Scope, reader: BlobReader) -> TrackSegments:
    # The most specific level that says how segments are addressed decides the mode; the
    # same element at less specific levels supplies inherited attributes.
    for level in reversed(scope.chain):
        for tag in _KINDS:
            if level.find(scope.ns + tag) is None:
                continue
            found = (el.find(scope.ns + tag) for el in reversed(scope.chain))
            merged = _Merged([el for el in found if el is not None], scope.ns)
            if tag == "SegmentTemplate":
                return _template(merged, scope)
            if tag == "SegmentList":
                return _list(merged, scope)
            return _base(merged, scope, reader)
    raise MediaError(
        f"{scope.where()} has no SegmentTemplate, SegmentList or SegmentBase", obj=scope.manifest
    )


def _timescale(m: _Merged, scope: Scope, tag: str) -> int:
    ts = m.int_attr("timescale", 1, scope, tag)
    if not ts or ts <= 0:
        raise MediaError(f"{tag}@timescale must be positive ({scope.where()})", obj=scope.manifest)
    return ts


def _timing(m: _Merged, scope: Scope, tag: str, ts: int, pto: int, limit: int | None) -> Timeline:
    """SegmentTimeline, else ``@duration`` numbering; ``limit`` caps the segment count."""
    start_number = m.int_attr("startNumber", 1, scope, tag) or 0
    period_end = None if scope.period_end is None else (scope.period_end - scope.period_start)
    now = None if scope.now is None else scope.now - scope.period_start
    stl = m.child("SegmentTimeline")
    if stl is not None:
        open_end = period_end if period_end is not None else now
        try:
            timeline = timeline_from_s(
                (s.attrib for s in stl.iter(scope.ns + "S")),
                start_number=start_number,
                first_t=0,
                open_end=None if open_end is None else open_end * ts + pto,
                open_end_is_now=period_end is None,
            )
        except ValueError as e:
            raise MediaError(
                f"SegmentTimeline: {e} ({scope.where()})", obj=scope.manifest
            ) from None
        if limit is not None and len(timeline) > limit:
            timeline = Timeline(
                ((timeline.start(i), timeline.duration(i), 1) for i in range(limit)), start_number
            )
        return timeline
    d = m.int_attr("duration", None, scope, tag)
    if d is None or d <= 0:
        raise MediaError(
            f"{tag} needs a SegmentTimeline or a positive @duration ({scope.where()})",
            obj=scope.manifest,
        )
    counts = []
    if limit is not None:
        counts.append(limit)
    if period_end is not None:
        counts.append(math.ceil(round(period_end * ts / d, 6)))
    if now is not None:
        counts.append(max(0, math.floor(round(now * ts / d, 6))))  # only complete segments
    end_number = m.int_attr("endNumber", None, scope, tag)
    if end_number is not None:
        counts.append(end_number - start_number + 1)
    if not counts:
        raise MediaError(
            f"{tag}@duration numbering needs a Period duration or MPD@mediaPresentationDuration"
            f" to know how many segments exist ({scope.where()})",
            obj=scope.manifest,
        )
    return Timeline([(pto, d, max(0, min(counts)))], start_number)


def _template(m: _Merged, scope: Scope) -> TrackSegments:
    tag = "SegmentTemplate"
    media = m.attr("media")
    if not media:
        raise MediaError(f"SegmentTemplate@media is missing ({scope.where()})", obj=scope.manifest)
    ts = _timescale(m, scope, tag)
    pto = m.int_attr("presentationTimeOffset", 0, scope, tag) or 0
    timeline = _timing(m, scope, tag, ts, pto, None)
    init = m.attr("initialization")
    init_el = m.child("Initialization")
    init_url: str | None = None
    init_range = None
    if init:
        init_url = join_location(
            scope.base, compile_template(init, scope, "initialization")(None, None)
        )
    elif init_el is not None:
        init_url = _ref_or_base(scope, init_el.get("sourceURL"))
        if init_el.get("range"):
            init_range = parse_range(init_el.get("range", ""), "Initialization@range", scope)

    fill = compile_template(media, scope, "SegmentTemplate@media")
    join = location_joiner(scope.base)

    def locate(i: int) -> tuple[str, ByteRange | None]:
        return join(fill(timeline.number(i), timeline.start(i))), None

    return TrackSegments(timeline, ts, pto, scope.period_start, locate, init_url, init_range)


def _ref_or_base(scope: Scope, ref: str | None) -> str:
    """A reference, or the BaseURL itself when the manifest gives none (a single file)."""
    return join_location(scope.base, ref) if ref else scope.base


def _list(m: _Merged, scope: Scope) -> TrackSegments:
    tag = "SegmentList"
    # SegmentURLs are not inherited piecewise: the most specific list that has them wins.
    urls: list[ET.Element] = []
    for el in m.elements:
        urls = el.findall(scope.ns + "SegmentURL")
        if urls:
            break
    if not urls:
        raise MediaError(f"SegmentList has no SegmentURL ({scope.where()})", obj=scope.manifest)
    ts = _timescale(m, scope, tag)
    pto = m.int_attr("presentationTimeOffset", 0, scope, tag) or 0
    timeline = _timing(m, scope, tag, ts, pto, len(urls))
    init_el = m.child("Initialization")
    init_url = init_range = None
    if init_el is not None:
        init_url = _ref_or_base(scope, init_el.get("sourceURL"))
        if init_el.get("range"):
            init_range = parse_range(init_el.get("range", ""), "Initialization@range", scope)

    def locate(i: int) -> tuple[str, ByteRange | None]:
        el = urls[i]
        url = _ref_or_base(scope, el.get("media"))
        rng = el.get("mediaRange")
        return url, parse_range(rng, "SegmentURL@mediaRange", scope) if rng else None

    return TrackSegments(timeline, ts, pto, scope.period_start, locate, init_url, init_range)


def _base(m: _Merged, scope: Scope, reader: BlobReader) -> TrackSegments:
    tag = "SegmentBase"
    index_range = m.attr("indexRange")
    if not index_range:
        raise MediaError(f"SegmentBase@indexRange is missing ({scope.where()})", obj=scope.manifest)
    rng = parse_range(index_range, "SegmentBase@indexRange", scope)
    url = scope.base
    sidx = parse_sidx(reader.read(url, rng), rng.offset, obj=url)
    refs = sidx.references
    if not refs:
        raise MediaError("sidx lists no subsegments", obj=url)
    runs = []
    t = sidx.earliest_presentation_time
    for ref in refs:
        runs.append((t, ref.duration, 1))
        t += ref.duration
    try:
        timeline = Timeline(runs, 1)
    except ValueError as e:
        raise MediaError(f"sidx: {e}", obj=url) from None
    # presentationTimeOffset is in SegmentBase@timescale; the sidx has its own.
    pto_base = m.int_attr("presentationTimeOffset", 0, scope, tag) or 0
    pto = pto_base * sidx.timescale / _timescale(m, scope, tag)
    init_el = m.child("Initialization")
    init_url = url
    init_range: ByteRange | None = ByteRange(0, rng.offset) if rng.offset > 0 else None
    if init_el is not None:
        if init_el.get("sourceURL"):
            init_url = join_location(scope.base, init_el.get("sourceURL", ""))
            init_range = None
        if init_el.get("range"):
            init_range = parse_range(init_el.get("range", ""), "Initialization@range", scope)

    def locate(i: int) -> tuple[str, ByteRange | None]:
        ref = refs[i]
        return url, ByteRange(ref.offset, ref.size)

    return TrackSegments(
        timeline, sidx.timescale, pto, scope.period_start, locate, init_url, init_range
    )
