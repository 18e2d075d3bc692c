"""The facts ClipResult reports about the written file.

They come from what the writer was given (``ClipWriter.video_span``/``audio_span``: one
packet per frame, each with its time span) and from the file itself (size, SHA-256), not
from a probe that demuxes the whole output again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import MediaError
from pipeline.media.writer import ClipWriter
from pipeline.storage import file_sha256


@dataclass(frozen=True)
class OutputFacts:
    container: str
    duration: float
    video_codec: str
    audio_codec: str | None
    width: int
    height: int
    frame_count: int
    size: int
    sha256: str


def describe(path: Path, writer: ClipWriter) -> OutputFacts:
    """The facts of ``path``, written (and closed) by ``writer``."""
    video, audio = writer.video_span, writer.audio_span
    if video is None:
        raise MediaError("output has no video stream", obj=str(path))
    spans = [s for s in (video, audio) if s is not None and s.start is not None]
    starts = [s.start for s in spans if s.start is not None]
    ends = [s.end for s in spans if s.end is not None]
    # The container's duration: from the earliest packet of any stream to the latest end.
    duration = max(ends) - min(starts) if starts else 0.0
    return OutputFacts(
        container=writer.kind,
        duration=round(duration, 6),
        video_codec=video.codec,
        audio_codec=audio.codec if audio is not None else None,
        width=writer.size[0],
        height=writer.size[1],
        frame_count=video.packets,
        size=path.stat().st_size,
        sha256=file_sha256(path),
    )
