"""Seeking in long, PDT-dated HLS media playlists without walking every line.

Archives dated by ``EXT-X-PROGRAM-DATE-TIME`` (typically one per segment) can be bisected:
the PDTs grow with the line number, and each one anchors its segment on its own.  So the
walk can start at the last segment dated at least a second before the window and, once past
the window, jump to the last PDT to learn where the playlist ends.  Starting a walk at a
segment's *block* (the tags after the previous URI) keeps the per-segment tags intact;
what lasts across segments (the current ``EXT-X-MAP``) is looked up here.
"""

from __future__ import annotations

import re

from pipeline.manifest.hls_tags import MAP, PDT, Playlist, parse_map, parse_pdt_ms
from pipeline.model import ByteRange

# how far (lines) a probe looks for the next PDT before calling the PDTs too sparse to seek
PROBE_SPAN = 64
# start a segment earlier than strictly needed, so EXTINF rounding can never skip one
MARGIN_MS = 1000

_IMPLICIT_RANGE = re.compile(r"^#EXT-X-BYTERANGE:[^@\n]*$", re.M)
_PDT_LEN = len(PDT)
_TARGET_DURATION = re.compile(r"^#EXT-X-TARGETDURATION:\s*(\d+)", re.M)


def can_seek(source: Playlist) -> bool:
    """Implicit BYTERANGE offsets chain through every earlier segment: walk those whole."""
    return "#EXT-X-BYTERANGE:" not in source.text or not _IMPLICIT_RANGE.search(source.text)


def block_at(source: Playlist, target_ms: int) -> int:
    """Line index where the block of the last segment dated before ``target_ms`` begins.

    0 when no PDT is early enough or the PDTs are too sparse to bisect.
    """
    lines = source.lines
    target_ms -= MARGIN_MS
    low, high = 0, len(lines)  # the wanted PDT line lies in [low, high) or before low
    best = -1
    while high - low > PROBE_SPAN:
        mid = (low + high) // 2
        q = _next_pdt(lines, mid, min(high, mid + PROBE_SPAN))
        if q < 0:
            if mid + PROBE_SPAN < high:
                return 0  # sparse PDTs: the walk from the top is the safe answer
            high = mid
            continue
        if _pdt(source, q) <= target_ms:
            best, low = q, q + 1
        else:
            high = mid
    for q in range(low, high):
        if lines[q].startswith(PDT) and _pdt(source, q) <= target_ms:
            best = q
    return _block_start(lines, best) if best > 0 else 0


def longest_segment_ms(source: Playlist) -> int:
    """EXT-X-TARGETDURATION in ms (every EXTINF rounds to at most it); 10 s if absent."""
    m = _TARGET_DURATION.search(source.text)
    return int(m.group(1)) * 1000 if m else 10_000


def last_pdt_block(source: Playlist) -> int:
    """Line index of the block of the last PDT-dated segment (0 if there is none)."""
    pos = source.text.rfind("\n" + PDT)
    if pos < 0:
        return 0
    return _block_start(source.lines, source.text.count("\n", 0, pos) + 1)


def map_before(source: Playlist, index: int) -> tuple[str, ByteRange | None] | None:
    """The ``EXT-X-MAP`` in force for a segment whose block starts at line ``index``."""
    text = source.text
    if MAP not in text:
        return None
    offset = len("\n".join(source.lines[:index]))
    pos = text.rfind("\n" + MAP, 0, offset)
    if pos < 0:
        return None
    end = text.find("\n", pos + 1)
    line = text[pos + 1 : end if end >= 0 else len(text)]
    return parse_map(line[len(MAP) :], source.location, text.count("\n", 0, pos) + 2)


def _pdt(source: Playlist, q: int) -> int:
    return parse_pdt_ms(source.lines[q][_PDT_LEN:], source.location, q + 1)


def _next_pdt(lines: list[str], start: int, stop: int) -> int:
    for q in range(start, stop):
        if lines[q].startswith(PDT):
            return q
    return -1


def _block_start(lines: list[str], q: int) -> int:
    """Back from a tag line to the line after the previous segment's URI."""
    while q > 0 and (lines[q - 1][:1] == "#" or not lines[q - 1].strip()):
        q -= 1
    return q
