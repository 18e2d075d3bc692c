"""The demo recording: a wall-clock-anchored synthetic archive for first requests and demos."""

from __future__ import annotations

import time
from pathlib import Path

from pipeline.synthetic.dash import write_dash
from pipeline.synthetic.encode import clear_caches
from pipeline.synthetic.hls import write_hls
from pipeline.synthetic.spec import ArchiveSpec


def demo_spec(minutes: float = 1.0, start_pos_ms: int | None = None) -> ArchiveSpec:
    """640x360, 25 fps, AAC; anchored at ``start_pos_ms`` (default: it ends now)."""
    if not 0 < minutes <= 24 * 60:
        raise ValueError(f"minutes must be in (0, 1440], not {minutes}")
    length_ms = round(minutes * 60_000)
    if start_pos_ms is None:
        start_pos_ms = (int(time.time() * 1000) - length_ms) // 1000 * 1000
    return ArchiveSpec(
        seconds=length_ms / 1000,
        width=640,
        height=360,
        epoch_ms=start_pos_ms,
        preset="veryfast",
        crf=26,
    )


def write_demo_archive(
    out_dir: Path, *, minutes: float = 1.0, start_pos_ms: int | None = None, hls: bool = False
) -> Path:
    """Write the demo recording (DASH ``stream.mpd``, or HLS/TS ``index.m3u8``)."""
    spec = demo_spec(minutes, start_pos_ms)
    try:
        if hls:
            return write_hls(Path(out_dir), spec, container="ts")
        return write_dash(Path(out_dir), spec)
    finally:
        clear_caches()  # a long-lived process should not keep the encoded demo in memory
