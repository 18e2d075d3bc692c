"""The output container: MP4 with +faststart, or MPEG-TS; video in 1/90000 s ticks."""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av

from pipeline.errors import MediaError
from pipeline.media.demux import probe_options
from pipeline.media.encode import TIME_BASE, configure, encoder_options
from pipeline.media.options import EncodeOptions
from pipeline.media.source import AudioInfo, VideoInfo

ContainerKind = Literal["mp4", "mpegts"]


def container_kind(path: Path) -> ContainerKind:
    return "mpegts" if path.suffix.lower() == ".ts" else "mp4"


@dataclass
class Span:
    """What one output stream was given: its codec, packets and time span (s)."""

    codec: str
    packets: int = 0
    start: float | None = None
    end: float | None = None

    def add(self, pts: int, duration: int, tb: Fraction) -> None:
        # int / int rounds correctly, without a Fraction per packet.
        start = pts * tb.numerator / tb.denominator
        end = (pts + duration) * tb.numerator / tb.denominator
        self.packets += 1
        self.start = start if self.start is None else min(self.start, start)
        self.end = end if self.end is None else max(self.end, end)


class ClipWriter:
    """The output file, and what was written into it (``video_span``, ``audio_span``):
    the clip's facts come from there instead of a probe of the finished file."""

    def __init__(self, path: Path, kind: ContainerKind) -> None:
        self.kind = kind
        options = {"movflags": "+faststart+negative_cts_offsets"} if kind == "mp4" else {}
        self.out = av.open(str(path), "w", format=kind, options=options)
        self.video: av.VideoStream | None = None
        self.audio: av.AudioStream | None = None
        self.audio_tb = Fraction(1, 48000)
        self.last_dts: int | None = None
        self.size: tuple[int, int] = (0, 0)  # video width, height
        self.video_span: Span | None = None
        self.audio_span: Span | None = None

    # -- streams -------------------------------------------------------------------------
    def add_copy_video(self, template: bytes, info: VideoInfo) -> None:
        """A stream for Annex B packets with in-band parameter sets (copied or re-encoded).

        The template is only a stream to copy parameters from (the sets and size come from
        its headers): its probe need not decode a frame (~15 ms at 1080p)."""
        with av.open(io.BytesIO(template), "r", stream_options=probe_options(True)) as src:
            stream = self.out.add_stream_from_template(src.streams.video[0])
        stream.codec_context.extradata = info.extradata
        if self.kind == "mp4":
            # In-band parameter sets (they change at the smart-cut junctions): avc3/hev1.
            stream.codec_tag = "hev1" if info.codec == "hevc" else "avc3"
        stream.time_base = TIME_BASE
        self.video = stream
        self.video_span, self.size = Span(info.codec), (info.width, info.height)

    def add_encoded_video(
        self, codec: Literal["h264", "hevc"], info: VideoInfo, options: EncodeOptions
    ) -> av.VideoCodecContext:
        name = "libx265" if codec == "hevc" else "libx264"
        stream = self.out.add_stream(name, rate=info.fps)
        assert isinstance(stream, av.VideoStream)
        configure(stream.codec_context, info, "yuv420p", options)
        stream.codec_context.options = encoder_options(codec, options)
        if codec == "hevc" and self.kind == "mp4":
            stream.codec_tag = "hvc1"
        stream.time_base = TIME_BASE
        self.video = stream
        self.video_span, self.size = Span(codec), (info.width, info.height)
        return stream.codec_context

    def add_copy_audio(self, template: bytes, info: AudioInfo) -> None:
        with av.open(io.BytesIO(template), "r") as src:
            stream = self.out.add_stream_from_template(src.streams.audio[0])
        if info.extradata:
            stream.codec_context.extradata = info.extradata
        self.audio_tb = Fraction(1, info.sample_rate)
        stream.time_base = self.audio_tb
        self.audio = stream
        self.audio_span = Span(info.codec)

    def add_aac_audio(self, info: AudioInfo, bitrate: int) -> av.AudioCodecContext:
        stream = self.out.add_stream("aac", rate=info.sample_rate)
        assert isinstance(stream, av.AudioStream)
        stream.codec_context.layout = info.layout
        stream.codec_context.bit_rate = bitrate
        self.audio_tb = Fraction(1, info.sample_rate)
        stream.time_base = self.audio_tb
        stream.codec_context.time_base = self.audio_tb
        self.audio = stream
        self.audio_span = Span("aac")
        return stream.codec_context

    # -- packets -------------------------------------------------------------------------
    def mux_video(self, data: bytes, pts: int, dts: int, key: bool, duration: int) -> None:
        assert self.video is not None
        if self.last_dts is not None and dts <= self.last_dts:
            dts = self.last_dts + 1
        if dts > pts:
            raise MediaError("video timestamps cannot be made monotonic at a cut", obj=f"pts {pts}")
        p = av.Packet(data)
        p.pts, p.dts, p.duration = pts, dts, duration
        p.time_base = TIME_BASE
        p.is_keyframe = key
        p.stream = self.video
        self.last_dts = dts
        self.out.mux(p)
        assert self.video_span is not None
        self.video_span.add(pts, duration, TIME_BASE)

    def mux_encoded_video(self, packets: list[av.Packet]) -> None:
        for p in packets:
            if self.video is None or self.video_span is None:
                raise MediaError("video stream missing", obj="output")
            _record(self.video_span, p, TIME_BASE)
            p.stream = self.video
            self.out.mux(p)

    def mux_audio(self, data: bytes, pts: int, duration: int) -> None:
        assert self.audio is not None
        p = av.Packet(data)
        p.pts = p.dts = pts
        p.duration = duration
        p.time_base = self.audio_tb
        p.stream = self.audio
        self.out.mux(p)
        assert self.audio_span is not None
        self.audio_span.add(pts, duration, self.audio_tb)

    def mux_audio_packets(self, packets: list[av.Packet]) -> None:
        for p in packets:
            assert self.audio is not None and self.audio_span is not None
            _record(self.audio_span, p, self.audio_tb)
            p.stream = self.audio
            self.out.mux(p)

    def close(self) -> None:
        self.out.close()


def _record(span: Span, p: av.Packet, default_tb: Fraction) -> None:
    """An encoder's packet, before the muxer rescales it to the stream's time base."""
    if p.pts is not None:
        span.add(p.pts, p.duration or 0, p.time_base or default_tb)
