"""Frame-accurate media work: thumbnails and clips out of resolved archive ranges.

The exports load on first use (PEP 562): ``pipeline.settings`` imports
``pipeline.media.options``, and a thumbnail needs neither the clip machinery nor numpy, so
importing the package must not pull them in.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOMES = {
    "ClipResult": "pipeline.media.results",
    "EncodeOptions": "pipeline.media.options",
    "ThumbnailResult": "pipeline.media.results",
    "export_clip": "pipeline.media.clip",
    "grab_thumbnail": "pipeline.media.thumbnail",
    "resolve_thumbnail_point": "pipeline.media.thumbnail",
    "THUMBNAIL_WINDOW_MS": "pipeline.media.thumbnail",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later look-ups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
