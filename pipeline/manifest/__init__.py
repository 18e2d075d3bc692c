"""Manifest resolution: DASH MPD and HLS m3u8 to the segments that cover a range."""

from __future__ import annotations

from pipeline.errors import MediaError
from pipeline.manifest.request import RangeRequest, range_request
from pipeline.model import Resolution
from pipeline.storage import BlobReader

__all__ = ["RangeRequest", "range_request", "resolve"]


def resolve(
    reader: BlobReader, manifest: str, request: RangeRequest, *, now_ms: int | None = None
) -> Resolution:
    """Resolve ``request`` against the manifest at ``manifest`` (path or s3:// URL).

    ``now_ms`` is the wall clock used for dynamic (live) DASH manifests; default: time.time().
    """
    data = reader.read(manifest)
    head = data[:512].lstrip()
    if head.startswith(b"#EXTM3U") or manifest.endswith(".m3u8"):
        from pipeline.manifest.hls import resolve_hls

        return resolve_hls(reader, manifest, data, request)
    if b"<MPD" in data[:4096] or manifest.endswith(".mpd"):
        from pipeline.manifest.dash import resolve_dash

        return resolve_dash(reader, manifest, data, request, now_ms=now_ms)
    raise MediaError(f"{manifest} is neither a DASH MPD nor an HLS playlist", obj=manifest)
