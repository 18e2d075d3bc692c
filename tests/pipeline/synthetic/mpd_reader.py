"""A deliberately small, independent MPD reader: enough to check what the writer claims."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}


@dataclass
class SegmentBytes:
    init: bytes
    data: bytes | None  # None: the file is missing
    start: float  # MPD time (s) the manifest gives the segment


def _seconds(text: str) -> float:
    m = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?", text)
    assert m, text
    h, mi, s = m.groups()
    return int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)


def _fill(template: str, rep_id: str, number: int | None = None, time: int | None = None) -> str:
    out = template.replace("$RepresentationID$", rep_id)
    if time is not None:
        out = out.replace("$Time$", str(time))
    if number is not None:
        out = re.sub(r"\$Number(?:%0(\d+)d)?\$", lambda m: f"{number:0{m.group(1) or 1}d}", out)
    return out


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


def segments(mpd: Path, rep_id: str) -> list[SegmentBytes]:
    """All segments of representation ``rep_id`` over every Period, in order."""
    root = ET.parse(mpd).getroot()
    base = mpd.parent
    out: list[SegmentBytes] = []
    for period in root.findall("d:Period", NS):
        p_start = _seconds(period.get("start", "PT0S"))
        for aset in period.findall("d:AdaptationSet", NS):
            for rep in aset.findall("d:Representation", NS):
                if rep.get("id") != rep_id:
                    continue
                tmpl = rep.find("d:SegmentTemplate", NS)
                if tmpl is None:
                    tmpl = aset.find("d:SegmentTemplate", NS)
                if tmpl is not None:
                    out += _template(base, tmpl, rep_id, p_start)
                elif (lst := rep.find("d:SegmentList", NS)) is not None:
                    out += _list(base, lst, p_start)
                else:
                    out += _base(base, rep, p_start)
    return out


def _template(base: Path, tmpl: ET.Element, rep_id: str, p_start: float) -> list[SegmentBytes]:
    ts = int(tmpl.get("timescale", "1"))
    pto = int(tmpl.get("presentationTimeOffset", "0"))
    init = (base / _fill(tmpl.get("initialization", ""), rep_id)).read_bytes()
    media = tmpl.get("media", "")
    number = int(tmpl.get("startNumber", "1"))
    timeline = tmpl.find("d:SegmentTimeline", NS)
    out = []
    if timeline is None:
        d = int(tmpl.get("duration", "0"))
        n = number
        # Walk numbers until files stop (with holes allowed for gaps).
        misses = 0
        while misses < 3:
            data = _read(base / _fill(media, rep_id, number=n))
            start = p_start + (n - number) * d / ts
            if data is None:
                misses += 1
            else:
                misses = 0
            out.append(SegmentBytes(init, data, start))
            n += 1
        while out and out[-1].data is None:
            out.pop()
        return out
    t = 0
    for s in timeline.findall("d:S", NS):
        t = int(s.get("t", t))
        d = int(s.get("d", "0"))
        for _ in range(int(s.get("r", "0")) + 1):
            data = _read(base / _fill(media, rep_id, number=number, time=t))
            out.append(SegmentBytes(init, data, p_start + (t - pto) / ts))
            t += d
            number += 1
    return out


def _list(base: Path, lst: ET.Element, p_start: float) -> list[SegmentBytes]:
    ts = int(lst.get("timescale", "1"))
    d = int(lst.get("duration", "0"))
    init_el = lst.find("d:Initialization", NS)
    assert init_el is not None
    init = (base / init_el.get("sourceURL", "")).read_bytes()
    return [
        SegmentBytes(init, _read(base / u.get("media", "")), p_start + i * d / ts)
        for i, u in enumerate(lst.findall("d:SegmentURL", NS))
    ]


def _base(base: Path, rep: ET.Element, p_start: float) -> list[SegmentBytes]:
    import struct

    url = rep.find("d:BaseURL", NS)
    sb = rep.find("d:SegmentBase", NS)
    assert url is not None and url.text and sb is not None
    data = (base / url.text).read_bytes()
    init_el = sb.find("d:Initialization", NS)
    assert init_el is not None
    a, b = (int(x) for x in init_el.get("range", "").split("-"))
    init = data[a : b + 1]
    ia, ib = (int(x) for x in sb.get("indexRange", "").split("-"))
    sidx = data[ia : ib + 1]
    assert sidx[4:8] == b"sidx"
    pto = int(sb.get("presentationTimeOffset", "0"))
    timescale, ept, first = struct.unpack_from(">IQQ", sidx, 16)
    count = struct.unpack_from(">H", sidx, 38)[0]
    pos = ib + 1 + first
    t = ept
    out = []
    for i in range(count):
        size, duration, _ = struct.unpack_from(">III", sidx, 40 + 12 * i)
        out.append(SegmentBytes(init, data[pos : pos + size], p_start + (t - pto) / timescale))
        pos += size
        t += duration
    return out
