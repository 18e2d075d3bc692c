"""Just enough ISO-BMFF reading and writing to cut fragments into segments and write a sidx."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"mvex", b"moof", b"traf", b"edts"}


def iter_boxes(
    data: bytes, start: int = 0, end: int | None = None
) -> Iterator[tuple[bytes, int, int]]:
    """(type, offset, size) of each box between ``start`` and ``end``."""
    end = len(data) if end is None else end
    off = start
    while off + 8 <= end:
        size, typ = struct.unpack_from(">I4s", data, off)
        header = 8
        if size == 1:
            size = struct.unpack_from(">Q", data, off + 8)[0]
            header = 16
        elif size == 0:
            size = end - off
        if size < header or off + size > end:
            raise ValueError(f"bad box {typ!r} at {off}")
        yield typ, off, size
        off += size


def find_box(
    data: bytes, path: list[bytes], start: int = 0, end: int | None = None
) -> tuple[int, int] | None:
    """(offset, size) of the first box along ``path`` (e.g. [b"moov", b"trak", b"mdia"])."""
    for typ, off, size in iter_boxes(data, start, end):
        if typ == path[0]:
            if len(path) == 1:
                return off, size
            if typ in _CONTAINERS:
                found = find_box(data, path[1:], off + 8, off + size)
                if found:
                    return found
    return None


@dataclass(frozen=True)
class Fragment:
    """One moof+mdat pair, with its timing in media ticks."""

    data: bytes
    decode_time: int  # tfdt baseMediaDecodeTime
    earliest_pts: int
    duration: int  # sum of sample durations
    samples: int


def mdhd_timescale(init: bytes) -> int:
    found = find_box(init, [b"moov", b"trak", b"mdia", b"mdhd"])
    if found is None:
        raise ValueError("init segment has no mdhd")
    off, _ = found
    version = init[off + 8]
    return int(struct.unpack_from(">I", init, off + (28 if version == 1 else 20))[0])


def _trex_default_duration(init: bytes) -> int:
    found = find_box(init, [b"moov", b"mvex", b"trex"])
    if found is None:
        return 0
    return int(struct.unpack_from(">I", init, found[0] + 20)[0])


def parse_fragment(chunk: bytes, default_duration: int) -> Fragment:
    """Timing of a moof (+ its mdat) as written by FFmpeg's mov muxer (one track)."""
    tfhd = find_box(chunk, [b"moof", b"traf", b"tfhd"])
    tfdt = find_box(chunk, [b"moof", b"traf", b"tfdt"])
    trun = find_box(chunk, [b"moof", b"traf", b"trun"])
    if tfhd is None or tfdt is None or trun is None:
        raise ValueError("fragment without tfhd/tfdt/trun")
    off = tfhd[0]
    flags = int.from_bytes(chunk[off + 9 : off + 12], "big")
    pos = off + 16  # after header, version/flags, track_ID
    if flags & 0x1:
        pos += 8
    if flags & 0x2:
        pos += 4
    if flags & 0x8:
        default_duration = struct.unpack_from(">I", chunk, pos)[0]
    off = tfdt[0]
    decode_time = (
        struct.unpack_from(">Q", chunk, off + 12)[0]
        if chunk[off + 8] == 1
        else struct.unpack_from(">I", chunk, off + 12)[0]
    )
    off = trun[0]
    version = chunk[off + 8]
    flags = int.from_bytes(chunk[off + 9 : off + 12], "big")
    count = struct.unpack_from(">I", chunk, off + 12)[0]
    pos = off + 16 + (4 if flags & 0x1 else 0) + (4 if flags & 0x4 else 0)
    dts, earliest, total = decode_time, None, 0
    for _ in range(count):
        duration, cto = default_duration, 0
        if flags & 0x100:
            duration = struct.unpack_from(">I", chunk, pos)[0]
            pos += 4
        if flags & 0x200:
            pos += 4
        if flags & 0x400:
            pos += 4
        if flags & 0x800:
            cto = struct.unpack_from(">i" if version else ">I", chunk, pos)[0]
            pos += 4
        pts = dts + cto
        earliest = pts if earliest is None else min(earliest, pts)
        dts += duration
        total += duration
    return Fragment(
        chunk, decode_time, earliest if earliest is not None else decode_time, total, count
    )


def split_fragmented(data: bytes) -> tuple[bytes, list[Fragment]]:
    """Split FFmpeg's fragmented MP4 into the init segment (ftyp+moov) and its fragments."""
    init_end = 0
    fragments: list[Fragment] = []
    moof_start: int | None = None
    init = b""
    default_duration = 0
    for typ, off, size in iter_boxes(data):
        if typ in (b"ftyp", b"moov"):
            init_end = off + size
            if typ == b"moov":
                init = data[:init_end]
                default_duration = _trex_default_duration(init)
        elif typ == b"moof":
            moof_start = off
        elif typ == b"mdat" and moof_start is not None:
            fragments.append(parse_fragment(data[moof_start : off + size], default_duration))
            moof_start = None
    if not init:
        raise ValueError("no moov in fragmented output")
    return init, fragments


def sidx_box(timescale: int, earliest_pts: int, refs: list[tuple[int, int]]) -> bytes:
    """A version-1 sidx: ``refs`` are (referenced size, subsegment duration), each a SAP start."""
    body = struct.pack(">IIQQHH", 1, timescale, earliest_pts, 0, 0, len(refs))
    for size, duration in refs:
        body += struct.pack(">III", size & 0x7FFFFFFF, duration, 0x90000000)  # SAP type 1
    payload = bytes([1, 0, 0, 0]) + body
    return struct.pack(">I4s", 8 + len(payload), b"sidx") + payload


def avc_codec_string(init: bytes) -> str:
    found = find_box(init, [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"])
    if found is None:
        raise ValueError("init segment has no stsd")
    off, size = found
    stsd = init[off : off + size]
    i = stsd.find(b"avcC")
    if i >= 0:
        profile, compat, level = stsd[i + 5], stsd[i + 6], stsd[i + 7]
        return f"avc1.{profile:02x}{compat:02x}{level:02x}"
    i = stsd.find(b"hvcC")
    if i >= 0:
        return _hevc_codec_string(stsd, i + 4, "hvc1" if b"hvc1" in stsd else "hev1")
    if b"mp4a" in stsd:
        return "mp4a.40.2"
    raise ValueError("unknown sample entry in init segment")


def _hevc_codec_string(buf: bytes, p: int, tag: str) -> str:
    # ISO/IEC 14496-15 Annex E: profile space/tier/idc, compatibility flags (bit-reversed),
    # tier+level, constraint bytes without trailing zeros.
    b1 = buf[p + 1]
    space = "ABC"[(b1 >> 6) - 1] if b1 >> 6 else ""
    tier = "H" if b1 & 0x20 else "L"
    idc = b1 & 0x1F
    compat = int.from_bytes(buf[p + 2 : p + 6], "big")
    compat_rev = int(f"{compat:032b}"[::-1], 2)
    constraints = list(buf[p + 6 : p + 12])
    while constraints and constraints[-1] == 0:
        constraints.pop()
    level = buf[p + 12]
    parts = [tag, f"{space}{idc}", f"{compat_rev:X}", f"{tier}{level}"]
    parts += [f"{c:X}" for c in constraints]
    return ".".join(parts)
