"""The ISO BMFF segment index box (``sidx``) that a DASH SegmentBase points at."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pipeline.errors import MediaError


@dataclass(frozen=True, slots=True)
class SidxReference:
    offset: int  # absolute byte offset of the subsegment in the file
    size: int
    duration: int  # in the sidx timescale


@dataclass(frozen=True, slots=True)
class Sidx:
    timescale: int
    earliest_presentation_time: int
    references: tuple[SidxReference, ...]


def parse_sidx(data: bytes, data_offset: int, *, obj: str) -> Sidx:
    """Find and parse the first ``sidx`` box in ``data`` (read from file offset ``data_offset``).

    Subsegment offsets are made absolute: the spec anchors ``first_offset`` at the first byte
    after the sidx box.
    """
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > len(data):
                break
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = len(data) - pos
        if size < header:
            raise MediaError(f"box at byte {data_offset + pos} has a bad size {size}", obj=obj)
        if kind == b"sidx":
            if pos + size > len(data):
                raise MediaError("sidx box is truncated (check indexRange)", obj=obj)
            return _parse_body(data[pos + header : pos + size], data_offset + pos + size, obj)
        pos += size
    raise MediaError("no sidx box in the indexRange bytes", obj=obj)


def _parse_body(body: bytes, anchor: int, obj: str) -> Sidx:
    try:
        version = body[0]
        _ref_id, timescale = struct.unpack_from(">II", body, 4)
        if version == 0:
            ept, first_offset = struct.unpack_from(">II", body, 12)
            pos = 20
        else:
            ept, first_offset = struct.unpack_from(">QQ", body, 12)
            pos = 28
        (count,) = struct.unpack_from(">H", body, pos + 2)
        pos += 4
        refs = []
        offset = anchor + first_offset
        for _ in range(count):
            word, duration, _sap = struct.unpack_from(">III", body, pos)
            pos += 12
            if word >> 31:
                # A hierarchical index (sidx pointing at sidx) is legal but no packager we
                # read writes one for a single-representation file.
                raise MediaError("hierarchical sidx (reference_type 1) is not supported", obj=obj)
            size = word & 0x7FFFFFFF
            refs.append(SidxReference(offset=offset, size=size, duration=duration))
            offset += size
    except (struct.error, IndexError) as e:
        raise MediaError("sidx box is truncated", obj=obj) from e
    if timescale <= 0:
        raise MediaError("sidx timescale is 0", obj=obj)
    return Sidx(timescale=timescale, earliest_presentation_time=ept, references=tuple(refs))
