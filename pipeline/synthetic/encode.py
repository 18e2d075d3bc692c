"""Encode synthetic video/audio with PyAV into fragmented MP4, cut into media segments.

FFmpeg's mov muxer writes the fragments (``frag_keyframe``: one per GOP for video; one per
AAC frame for audio, regrouped here so audio segments follow the video segment grid without
drift).  Edit lists are off: the muxer shifts timestamps so the first decode time is 0, and
the shift is measured and published as the presentation time offset instead.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import av

from pipeline.synthetic.boxes import Fragment, avc_codec_string, mdhd_timescale, split_fragmented
from pipeline.synthetic.frames import audio_samples, draw_frame
from pipeline.synthetic.spec import AUDIO_RATE, ArchiveSpec

_FMP4_OPTIONS = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "use_editlist": "0"}
AAC_FRAME = 1024


@dataclass(frozen=True)
class Segment:
    data: bytes  # one or more moof+mdat pairs
    media_start: int  # earliest presentation time, media ticks (what SegmentTimeline@t says)
    media_duration: int  # ticks up to the next segment's start (last: its sample durations)
    start: float  # archive time (s) of the earliest presentation
    end: float
    first_frame: int | None  # video: source index of the earliest presented frame


@dataclass(frozen=True)
class Track:
    """One encoded representation: init segment plus media segments on the archive timeline.

    archive_time = origin + (media_ticks - pto) / timescale.
    """

    kind: Literal["video", "audio"]
    init: bytes
    timescale: int
    pto: int
    origin: Fraction
    segments: tuple[Segment, ...]
    codecs: str
    width: int = 0
    height: int = 0
    sample_rate: int = 0

    @property
    def bandwidth(self) -> int:
        total = sum(len(s.data) for s in self.segments)
        span = self.segments[-1].end - self.segments[0].start if self.segments else 1.0
        return max(1, int(total * 8 / max(span, 1e-3)))


def _video_options(spec: ArchiveSpec) -> tuple[str, dict[str, str]]:
    g = str(spec.gop_frames)
    if spec.codec == "h264":
        x264 = f"scenecut=0:open-gop={int(spec.open_gop)}"
        if spec.open_gop:
            # An open-GOP I frame is no IDR, so MPEG-TS packaging would not insert SPS/PPS
            # before it; real open-GOP encoders repeat their headers in-band.
            x264 += ":repeat-headers=1"
        return "libx264", {
            "preset": spec.preset,
            "crf": str(spec.crf),
            "bf": str(spec.bframes),
            "g": g,
            "keyint_min": g,
            "sc_threshold": "0",
            "x264-params": x264,
        }
    x265 = (
        f"keyint={g}:min-keyint={g}:scenecut=0:bframes={spec.bframes}"
        f":open-gop={int(spec.open_gop)}:repeat-headers={int(spec.open_gop)}:log-level=error"
    )
    return "libx265", {"preset": spec.preset, "crf": str(spec.crf + 3), "x265-params": x265}


@functools.lru_cache(maxsize=32)
def encode_video(
    spec: ArchiveSpec, start_frame: int, end_frame: int, width: int, height: int, restart: bool
) -> Track:
    """Frames [start_frame, end_frame); ``restart``: media timestamps begin at 0 here."""
    base = start_frame if restart else 0
    codec, options = _video_options(spec)
    tb = 1 / spec.fps
    keyframes: list[int] = []  # source index of each keyframe, in decode order
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4", options=_FMP4_OPTIONS) as out:
        stream = out.add_stream(codec, rate=spec.fps, options=options)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = tb
        if spec.codec == "hevc":
            stream.codec_tag = "hvc1"  # what Apple players and the export contract expect

        def mux(packets: list[av.Packet]) -> None:
            for packet in packets:
                if packet.is_keyframe and packet.pts is not None:
                    keyframes.append(packet.pts + base)
                out.mux(packet)

        for k in range(start_frame, end_frame):
            frame = draw_frame(k, width, height)
            frame.pts, frame.time_base = k - base, tb
            mux(stream.encode(frame))
        mux(stream.encode(None))
    init, fragments = split_fragmented(buf.getvalue())
    timescale = mdhd_timescale(init)
    tpf = timescale / spec.fps
    if tpf.denominator != 1 or len(fragments) != len(keyframes):
        raise RuntimeError("unexpected fragmenting of the synthetic video")
    pto = fragments[0].earliest_pts - int(tpf) * (start_frame - base)
    origin = Fraction(base) / spec.fps

    groups: list[list[Fragment]] = []
    bounds = spec.segment_bounds(start_frame, end_frame)
    j = -1
    for kf, frag in zip(keyframes, fragments, strict=True):
        while j + 1 < len(bounds) and kf >= bounds[j + 1][0]:
            j += 1
            groups.append([])
        groups[-1].append(frag)
    return Track(
        kind="video",
        init=init,
        timescale=timescale,
        pto=pto,
        origin=origin,
        segments=_segments(groups, timescale, pto, origin, spec.fps),
        codecs=avc_codec_string(init),
        width=width,
        height=height,
    )


@functools.lru_cache(maxsize=32)
def encode_audio(spec: ArchiveSpec, start_frame: int, end_frame: int, restart: bool) -> Track:
    """AAC for the time of frames [start_frame, end_frame), cut on the video segment grid."""
    first = _sample_at(spec, start_frame)
    last = _sample_at(spec, end_frame)
    base = first if restart else 0
    buf = io.BytesIO()
    first_pts: int | None = None
    options = dict(_FMP4_OPTIONS, movflags="frag_every_frame+empty_moov+default_base_moof")
    with av.open(buf, "w", format="mp4", options=options) as out:
        stream = out.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        stream.codec_context.time_base = Fraction(1, AUDIO_RATE)
        stream.bit_rate = 64_000

        def mux(packets: list[av.Packet]) -> None:
            nonlocal first_pts
            for packet in packets:
                if first_pts is None:
                    first_pts = packet.pts
                out.mux(packet)

        for n in range(first, last, AAC_FRAME):
            count = min(AAC_FRAME, last - n)
            pcm = audio_samples(spec, n, count).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(pcm, format="fltp", layout="mono")
            frame.sample_rate = AUDIO_RATE
            frame.pts, frame.time_base = n - base, Fraction(1, AUDIO_RATE)
            mux(stream.encode(frame))
        mux(stream.encode(None))
    init, fragments = split_fragmented(buf.getvalue())
    timescale = mdhd_timescale(init)
    if timescale != AUDIO_RATE or first_pts is None:
        raise RuntimeError("unexpected audio timescale")
    shift = fragments[0].earliest_pts - first_pts
    pto = shift
    origin = Fraction(base, AUDIO_RATE)

    bounds = [Fraction(a) / spec.fps for a, _ in spec.segment_bounds(start_frame, end_frame)]
    groups: list[list[Fragment]] = [[] for _ in bounds]
    j = 0
    for frag in fragments:
        t = origin + Fraction(frag.earliest_pts - pto, timescale)
        while j + 1 < len(bounds) and t >= bounds[j + 1]:
            j += 1
        groups[j].append(frag)
    return Track(
        kind="audio",
        init=init,
        timescale=timescale,
        pto=pto,
        origin=origin,
        segments=_segments([g for g in groups if g], timescale, pto, origin, None),
        codecs="mp4a.40.2",
        sample_rate=AUDIO_RATE,
    )


def _sample_at(spec: ArchiveSpec, frame: int) -> int:
    return round(Fraction(frame) / spec.fps * AUDIO_RATE)


def _segments(
    groups: list[list[Fragment]],
    timescale: int,
    pto: int,
    origin: Fraction,
    fps: Fraction | None,
) -> tuple[Segment, ...]:
    starts = [min(f.earliest_pts for f in g) for g in groups]
    out = []
    for i, group in enumerate(groups):
        if i + 1 < len(groups):
            duration = starts[i + 1] - starts[i]
        elif fps is not None:  # video: every sample lasts one frame, leading pictures included
            duration = sum(f.duration for f in group)
        else:
            duration = max(f.earliest_pts + f.duration for f in group) - starts[i]
        start = origin + Fraction(starts[i] - pto, timescale)
        out.append(
            Segment(
                data=b"".join(f.data for f in group),
                media_start=starts[i],
                media_duration=duration,
                start=float(start),
                end=float(start + Fraction(duration, timescale)),
                first_frame=round(start * fps) if fps is not None else None,
            )
        )
    return tuple(out)


def clear_caches() -> None:
    """Forget encoded tracks (tests share them across layouts; a service should not)."""
    encode_video.cache_clear()
    encode_audio.cache_clear()
