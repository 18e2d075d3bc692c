"""Hand-written HLS playlists for the resolver tests, and a dict-backed BlobReader."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from pipeline.errors import SourceNotFound
from pipeline.manifest.hls import resolve_hls
from pipeline.manifest.request import range_request
from pipeline.model import ByteRange, Resolution

EPOCH = 1_562_253_600_000  # 2019-07-04T15:20:00Z
LOCATION = "/arc/cam1/index.m3u8"


def iso(ms: int, offset: str = "Z") -> str:
    text = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", offset)


class DictReader:
    """Serves playlists from a dict and records what was read."""

    def __init__(self, files: Mapping[str, str | bytes] | None = None) -> None:
        self.files = {k: v.encode() if isinstance(v, str) else v for k, v in (files or {}).items()}
        self.reads: list[str] = []

    def read(self, location: str, byte_range: ByteRange | None = None) -> bytes:
        self.reads.append(location)
        if location not in self.files:
            raise SourceNotFound(f"no such file: {location}", obj=location)
        return self.files[location]


def media_playlist(
    count: int = 5,
    duration: float = 2.0,
    *,
    pdt: str = "each",  # "each", "top", "none"
    epoch_ms: int = EPOCH,
    endlist: bool = True,
    name: str = "seg{i}.ts",
    header: tuple[str, ...] = (),
    extra: dict[int, list[str]] | None = None,  # tags placed before segment i's EXTINF
    jumps: dict[int, int] | None = None,  # segment i's PDT moved by this many ms (and later)
) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:6", f"#EXT-X-TARGETDURATION:{round(duration)}"]
    lines += header
    shift = 0
    for i in range(count):
        shift += (jumps or {}).get(i, 0)
        lines += (extra or {}).get(i, [])
        if pdt == "each" or (pdt == "top" and i == 0):
            when = epoch_ms + round(i * duration * 1000) + shift
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{iso(when)}")
        lines.append(f"#EXTINF:{duration:.6f},")
        lines.append(name.format(i=i))
    if endlist:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def resolve_text(
    text: str,
    start_pos: int | None = None,
    start_time: str | None = None,
    duration_ms: int = 4000,
    *,
    files: Mapping[str, str | bytes] | None = None,
    location: str = LOCATION,
) -> Resolution:
    reader = DictReader(files)
    request = range_request(start_pos, start_time, duration_ms)
    return resolve_hls(reader, location, text.encode(), request)
