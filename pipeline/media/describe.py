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
    video_duration: float
    audio_duration: float | None
    size: int
    sha256: str


def describe(path: Path) -> OutputFacts:
    try:
        with av.open(str(path), "r") as c:
            if not c.streams.video:
                raise MediaError("output has no video stream", obj=str(path))
            vs = c.streams.video[0]
            aus = c.streams.audio[0] if c.streams.audio else None
            streams = [s for s in (vs, aus) if s is not None]
            # Packets only (no decoding): one packet per frame.  Times as int / int, which
            # is what float(Fraction) computes, without a Fraction per packet.
            scale = {
                s.index: (s.time_base.numerator, s.time_base.denominator)
                for s in streams
                if s.time_base is not None
            }
            spans: dict[int, list[float]] = {}
            frames = 0
            for pkt in c.demux(streams):
                index = pkt.stream_index
                if pkt.pts is None or index not in scale:
                    continue
                if index == vs.index:
                    frames += 1
                num, den = scale[index]
                start = pkt.pts * num / den
                end = start + (pkt.duration or 0) * num / den
                span = spans.setdefault(index, [start, end])
                span[0], span[1] = min(span[0], start), max(span[1], end)
            vspan = spans.get(vs.index, [0.0, 0.0])
            aspan = spans.get(aus.index) if aus is not None else None
            duration = float(c.duration / av.time_base) if c.duration else vspan[1] - vspan[0]
            return OutputFacts(
                container="mpegts" if c.format.name == "mpegts" else "mp4",
                duration=duration,
                video_codec=vs.codec_context.name,
                audio_codec=aus.codec_context.name if aus is not None else None,
                width=vs.codec_context.width,
                height=vs.codec_context.height,
                frame_count=frames,
                video_duration=vspan[1] - vspan[0],
                audio_duration=(aspan[1] - aspan[0]) if aspan else None,
                size=path.stat().st_size,
                sha256=file_sha256(path),
            )
    except av.FFmpegError as e:
        raise MediaError(f"cannot read the written output: {e}", obj=str(path)) from e
