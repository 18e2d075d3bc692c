"""Frame-accurate media work: thumbnails and clips out of resolved archive ranges."""

from __future__ import annotations

from pipeline.media.clip import export_clip
from pipeline.media.options import EncodeOptions
from pipeline.media.results import ClipResult, ThumbnailResult
from pipeline.media.thumbnail import (
    THUMBNAIL_WINDOW_MS,
    grab_thumbnail,
    resolve_thumbnail_point,
)

__all__ = [
    "THUMBNAIL_WINDOW_MS",
    "ClipResult",
    "EncodeOptions",
    "ThumbnailResult",
    "export_clip",
    "grab_thumbnail",
    "resolve_thumbnail_point",
]
