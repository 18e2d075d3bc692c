"""Synthetic live-recording archives whose frames and audio identify themselves.

Every video frame shows its source index as a block barcode (:func:`read_frame_index`),
and a short beep starts at the time of every ``beep_every``-th frame (:func:`find_beeps`),
so a test can decode any output and know exactly which source frame and time it holds.
"""

from __future__ import annotations

from pipeline.synthetic.dash import LAYOUTS, write_dash
from pipeline.synthetic.demo import demo_spec, write_demo_archive
from pipeline.synthetic.encode import clear_caches
from pipeline.synthetic.frames import (
    beep_times,
    draw_frame,
    find_beeps,
    read_frame_index,
    read_luma_index,
)
from pipeline.synthetic.growing import GrowingArchive
from pipeline.synthetic.hls import write_hls
from pipeline.synthetic.spec import AUDIO_RATE, ArchiveSpec, frame_at, frame_time

__all__ = [
    "AUDIO_RATE",
    "LAYOUTS",
    "ArchiveSpec",
    "GrowingArchive",
    "beep_times",
    "clear_caches",
    "demo_spec",
    "draw_frame",
    "find_beeps",
    "frame_at",
    "frame_time",
    "read_frame_index",
    "read_luma_index",
    "write_dash",
    "write_demo_archive",
    "write_hls",
]
