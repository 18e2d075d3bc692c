"""HLS playlist text: decoding, the tags' value syntax, and the wall-clock anchor."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline.errors import MediaError
from pipeline.model import ByteRange
from pipeline.storage import join_location

EXTINF = "#EXTINF:"
PDT = "#EXT-X-PROGRAM-DATE-TIME:"
BYTERANGE = "#EXT-X-BYTERANGE:"
MAP = "#EXT-X-MAP:"
STREAM_INF = "#EXT-X-STREAM-INF:"

_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')
_PDT_LEN = len(PDT)
_EXTINF_LEN = len(EXTINF)


@dataclass(frozen=True, slots=True)
class Playlist:
    """A decoded playlist: its lines plus what substring checks tell at C speed."""

    location: str
    lines: list[str]
    text: str
    master: bool  # has master-only tags (EXT-X-STREAM-INF, EXT-X-MEDIA)
    has_pdt: bool  # has EXT-X-PROGRAM-DATE-TIME somewhere
    finished: bool  # EXT-X-ENDLIST or PLAYLIST-TYPE:VOD: the playlist will not grow


def read_playlist(data: bytes, location: str) -> Playlist:
    """Decode a playlist and split it into lines; it must start with ``#EXTM3U``."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise MediaError(f"line 1: not UTF-8 text ({e.reason})", obj=location) from e
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if not lines[0].strip().startswith("#EXTM3U"):
        raise MediaError("line 1: not an HLS playlist (no #EXTM3U header)", obj=location)
    finished = "#EXT-X-ENDLIST" in text or "#EXT-X-PLAYLIST-TYPE:VOD" in text
    master = STREAM_INF in text or "#EXT-X-I-FRAME-STREAM-INF:" in text or "#EXT-X-MEDIA:" in text
    return Playlist(location, lines, text, master, PDT in text, finished)


def last_line(playlist: Playlist) -> int:
    """Number of the last non-blank line, for errors about what a playlist lacks."""
    return max((n for n, line in enumerate(playlist.lines, 1) if line.strip()), default=1)


def attributes(value: str) -> dict[str, str]:
    """``KEY=VALUE,KEY="quoted, value"`` → dict with the quotes removed."""
    return {k: v[1:-1] if v.startswith('"') else v.strip() for k, v in _ATTRIBUTE.findall(value)}


def parse_pdt_ms(value: str, playlist: str, line_no: int) -> int:
    """``EXT-X-PROGRAM-DATE-TIME`` (ISO 8601, ``Z`` or an offset) → epoch milliseconds."""
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError as e:
        raise MediaError(
            f"line {line_no}: EXT-X-PROGRAM-DATE-TIME {value.strip()!r} is not ISO 8601",
            obj=playlist,
        ) from e
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)  # a zone-less PDT is taken as UTC, like players do
    return round(dt.timestamp() * 1000)


def parse_extinf(line: str, playlist: str, line_no: int) -> float:
    comma = line.find(",", _EXTINF_LEN)
    text = line[_EXTINF_LEN:comma] if comma >= 0 else line[_EXTINF_LEN:]
    try:
        duration = float(text)
    except ValueError:
        duration = -1.0
    if not 0.0 <= duration < 86400.0:  # also rejects nan and inf
        raise MediaError(
            f"line {line_no}: EXTINF duration {text.strip()!r} is not a number of seconds",
            obj=playlist,
        )
    return duration


def parse_byterange(value: str, playlist: str, line_no: int) -> tuple[int, int | None]:
    """``n[@o]`` → (length, offset or None when implicit)."""
    length, _, offset = value.strip().partition("@")
    try:
        n = int(length)
        o = int(offset) if offset else None
    except ValueError:
        n, o = -1, None
    if n <= 0 or (o is not None and o < 0):
        raise MediaError(f"line {line_no}: bad BYTERANGE {value.strip()!r}", obj=playlist)
    return n, o


def wall_clock_anchor(playlist: Playlist) -> int | None:
    """Epoch ms of the playlist's first segment, from the first PDT; None without any PDT.

    A PDT first given on a later segment still dates the first one: the EXTINF durations
    before it are subtracted.
    """
    if not playlist.has_pdt:
        return None
    elapsed = 0.0
    duration = 0.0
    for n, line in enumerate(playlist.lines, 1):
        if line.startswith(PDT):
            return parse_pdt_ms(line[_PDT_LEN:], playlist.location, n) - round(elapsed * 1000)
        if line.startswith(EXTINF):
            duration = parse_extinf(line, playlist.location, n)
        elif line[:1] != "#" and line.strip():
            elapsed += duration
            duration = 0.0
    return None


def parse_map(value: str, playlist: str, n: int) -> tuple[str, ByteRange | None]:
    attrs = attributes(value)
    uri = attrs.get("URI")
    if not uri:
        raise MediaError(f"line {n}: EXT-X-MAP without URI", obj=playlist)
    init_range = None
    if "BYTERANGE" in attrs:
        length, offset = parse_byterange(attrs["BYTERANGE"], playlist, n)
        init_range = ByteRange(offset or 0, length)
    return join_location(playlist, uri), init_range
