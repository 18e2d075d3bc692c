"""Frame-accurate media work: thumbnails and clips out of resolved archive ranges."""

from __future__ import annotations

from pipeline.media.clip import export_clip
from pipeline.media.options import EncodeOptions
from pipeline.media.results import ClipResult, ThumbnailResult
from pipeline.media.thumbnail import grab_thumbnail

__all__ = ["ClipResult", "EncodeOptions", "ThumbnailResult", "export_clip", "grab_thumbnail"]
