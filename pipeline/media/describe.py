"""Probe a written output file: what ClipResult reports is read back, not assumed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

from pipeline.errors import MediaError
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


def describe(path: Path) -> OutputFacts:
    try:
        with av.open(str(path), "r") as c:
            if not c.streams.video:
                raise MediaError("output has no video stream", obj=str(path))
            vs = c.streams.video[0]
            aus = c.streams.audio[0] if c.streams.audio else None
            # Packets only (no decoding): one packet per frame.
            first: float | None = None
            last = 0.0
            frames = 0
            tb = vs.time_base
            for pkt in c.demux(vs):
                if pkt.pts is None or tb is None:
                    continue
                frames += 1
                start = float(pkt.pts * tb)
                first = start if first is None else min(first, start)
                last = max(last, start + float((pkt.duration or 0) * tb))
            span = last - first if first is not None else 0.0
            duration = float(c.duration / av.time_base) if c.duration else span
            return OutputFacts(
                container="mpegts" if c.format.name == "mpegts" else "mp4",
                duration=duration,
                video_codec=vs.codec_context.name,
                audio_codec=aus.codec_context.name if aus is not None else None,
                width=vs.codec_context.width,
                height=vs.codec_context.height,
                frame_count=frames,
                size=path.stat().st_size,
                sha256=file_sha256(path),
            )
    except av.FFmpegError as e:
        raise MediaError(f"cannot read the written output: {e}", obj=str(path)) from e
