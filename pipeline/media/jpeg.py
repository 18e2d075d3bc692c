"""A decoded picture as a JPEG file, on an MJPEG encoder kept between thumbnails.

Opening an MJPEG encoder costs more than encoding a picture on it: at 1080p a fresh one
took 14.7 ms and 8.8k page faults per JPEG in a process set up as a worker is (freed large
blocks go back to the system at once: ``pipeline.cache.return_freed_memory``), one kept
open 5.5 ms and 1.0k (the reformatted picture's).  Kept encoders give the same bytes as
fresh ones: MJPEG is intra-only, and with one quantizer its rate control keeps no state
between pictures.  Each holds ~32 MiB at 1080p, so at most ``KEPT_MAX`` are kept per
process; a thread that finds none free opens its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.video.reformatter import VideoReformatter

from pipeline.media.encode import TICKS
from pipeline.media.results import ThumbnailResult

KEPT_MAX = 2  # kept encoders per process (~32 MiB each at 1080p)
TIME_BASE = Fraction(1, 25)


@dataclass(eq=False)
class _Encoder:
    """An open MJPEG encoder for one picture size; ``pts`` only grows (the encoder
    refuses a picture not later than the one before)."""

    context: av.VideoCodecContext
    size: tuple[int, int]
    pts: int = 0


class JpegEncoders:
    """Open encoders not in use, at most ``limit``, the most recently returned kept.

    A thread takes one (``take``) for its picture and gives it back after (``give``), so
    no two threads ever share one; one that failed is not given back.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._free: list[_Encoder] = []
        self._lock = threading.Lock()

    def take(self, width: int, height: int) -> _Encoder:
        with self._lock:
            for i in reversed(range(len(self._free))):  # the warmest first
                if self._free[i].size == (width, height):
                    return self._free.pop(i)
        return _Encoder(_open(width, height), (width, height))

    def give(self, encoder: _Encoder) -> None:
        with self._lock:
            self._free.append(encoder)
            while len(self._free) > self.limit:
                self._free.pop(0)

    def __len__(self) -> int:
        with self._lock:
            return len(self._free)

    def clear(self) -> None:
        with self._lock:
            self._free.clear()


ENCODERS = JpegEncoders(KEPT_MAX)


def _open(width: int, height: int) -> av.VideoCodecContext:
    context = av.CodecContext.create("mjpeg", "w")
    assert isinstance(context, av.VideoCodecContext)
    context.width, context.height, context.pix_fmt = width, height, "yuvj420p"
    context.time_base = TIME_BASE
    # One quantizer, so rate control has nothing to carry from one picture to the next:
    # a kept encoder then writes the bytes a fresh one does.  3 is where a fresh encoder
    # with the old qmin 1 / qmax 3 landed on every picture tried (its default bit rate is
    # far below any JPEG's): the same bytes as before on 1080p and 320x180 pictures.
    context.options = {"qmin": "3", "qmax": "3"}
    return context


def write_jpeg(frame: av.VideoFrame, out_path: Path, max_width: int | None) -> ThumbnailResult:
    """``frame`` (scaled down to ``max_width`` if wider) as a JPEG at ``out_path``,
    written whole or not at all (a ``.part`` file renamed)."""
    width, height = frame.width, frame.height
    if max_width is not None and width > max_width:
        height = max(2, round(height * max_width / width / 2) * 2)
        width = max_width - max_width % 2
    assert frame.pts is not None
    data = _encode(_full_range(frame, width, height), width, height)
    part = out_path.with_name(out_path.name + ".part")
    try:
        part.write_bytes(data)
        os.replace(part, out_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        raise
    return ThumbnailResult(
        path=out_path,
        width=width,
        height=height,
        time=frame.pts / TICKS,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _full_range(frame: av.VideoFrame, width: int, height: int) -> av.VideoFrame:
    # A reformatter of its own: a cached picture may be encoded by two threads at once,
    # and VideoFrame.reformat keeps one on the frame.
    return VideoReformatter().reformat(
        frame,
        width=width,
        height=height,
        format="yuvj420p",
        interpolation="AREA" if width < frame.width else None,
    )


def _encode(image: av.VideoFrame, width: int, height: int) -> bytes:
    encoder = ENCODERS.take(width, height)
    encoder.pts += 1
    image.pts, image.time_base = encoder.pts, TIME_BASE
    packets = encoder.context.encode(image)
    if not packets:  # an encoder that holds pictures back: drain it, keep none such
        return b"".join(bytes(p) for p in encoder.context.encode(None))
    ENCODERS.give(encoder)
    return b"".join(bytes(p) for p in packets)
