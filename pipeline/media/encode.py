"""Video encoders: whole-clip H.264/H.265 and the smart cut's edge encoders."""

from __future__ import annotations

from fractions import Fraction
from typing import Literal

import av

from pipeline.errors import MediaError
from pipeline.media.options import EncodeOptions
from pipeline.media.source import VideoInfo

TICKS = 90_000  # every video timestamp inside pipeline.media is in 1/90000 s
TIME_BASE = Fraction(1, TICKS)

_ENCODERS = {"h264": "libx264", "hevc": "libx265"}


def encoder_options(
    codec: Literal["h264", "hevc"],
    options: EncodeOptions,
    *,
    bframes: int | None = None,
    profile: str | None = None,
    level: int | None = None,
    edge: bool = False,
) -> dict[str, str]:
    if codec == "h264":
        preset = options.edge_h264_preset if edge else options.h264_preset
        opts = {"preset": preset, "crf": str(options.h264_crf)}
        if bframes is not None:
            opts["bf"] = str(bframes)
        if profile:
            opts["profile"] = _x264_profile(profile)
        if level:
            opts["level"] = f"{level // 10}.{level % 10}"
        return opts
    params = ["log-level=error"]
    if options.threads:
        # libx265 takes the thread count as its frame threads only; its worker pool (WPP
        # rows, lookahead) is sized by ``pools`` and would otherwise use every core.
        params.append(f"pools={options.threads}")
    if bframes is not None:
        params.append(f"bframes={bframes}")
    if level:
        params.append(f"level-idc={level / 30:g}")
    opts = {
        "preset": options.h265_preset,
        "crf": str(options.h265_crf),
        "x265-params": ":".join(params),
    }
    if profile:
        opts["profile"] = profile.lower().replace(" ", "")
    return opts


def _x264_profile(profile: str) -> str:
    p = profile.lower()
    for name in ("high444", "high422", "high10", "high", "main", "baseline"):
        if p.replace(" ", "").replace(":", "").startswith(name):
            return name
    if "baseline" in p:
        return "baseline"
    return "high"


def configure(
    ctx: av.VideoCodecContext, info: VideoInfo, pix_fmt: str, options: EncodeOptions
) -> None:
    ctx.width = info.width
    ctx.height = info.height
    ctx.pix_fmt = pix_fmt
    ctx.time_base = TIME_BASE
    ctx.framerate = info.fps
    if options.threads:
        ctx.thread_count = options.threads


def open_whole_clip(ctx: av.VideoCodecContext) -> None:
    """Open a whole-clip encoder with frame threads, as the ffmpeg CLI opens it.

    PyAV defaults every context to slice threads, which makes libx264 encode each picture
    in slices on the calling thread (``sliced_threads=1``): lower latency, but the call
    blocks for the whole picture and nothing else of the clip runs meanwhile.  Frame threads
    (``threads=3 sliced_threads=0`` on 2 cores, the CLI's x264 option string exactly) keep
    several pictures in flight.  Opened here, on the thread that owns the output: the
    container would otherwise open it on its first packet, possibly an audio one, while
    the encoder's thread opens it too.
    """
    ctx.thread_type = "FRAME"
    ctx.open()


def edge_encoder(info: VideoInfo, options: EncodeOptions) -> av.VideoCodecContext:
    """An encoder matching the source's codec, profile, level, size and pixel format.

    No B-frames, so its decode order is its presentation order and its packets slot in
    before (and after) the copied GOPs without reordering; no global header, so it emits
    its own parameter sets in-band with its first keyframe.
    """
    name = _ENCODERS[info.codec]
    try:
        ctx = av.CodecContext.create(name, "w")
    except av.FFmpegError as e:  # pragma: no cover - the wheel bundles both
        raise MediaError(f"encoder {name} unavailable: {e}", obj=name) from e
    assert isinstance(ctx, av.VideoCodecContext)
    configure(ctx, info, info.pix_fmt, options)
    ctx.options = encoder_options(
        info.codec, options, bframes=0, profile=info.profile, level=info.level, edge=True
    )
    return ctx


def new_decoder(codec: str, *, whole_clip: bool = False, threads: int = 0) -> av.VideoCodecContext:
    """A video decoder; frame threads only where it decodes a whole clip.

    ``threads`` (EXPORT_ENCODE_THREADS; 0: libavcodec's choice) 1 makes the decoder one
    thread: a worker told to use one encoder thread used ~1.3 cores with a frame-threaded
    decoder beside it, so two such workers on 2 cores competed (issue 8, goal 5).

    Frame threading (AUTO) delays every output by a frame per thread and keeps a context
    and frame pool per thread.  For at most a GOP (a thumbnail, a smart-cut edge, beside
    an x264 that already keeps both cores busy) it measured no faster on 2 cores and about
    6 MiB larger at 720p than slice threading, which still parallelizes multi-slice pictures.
    """
    ctx = av.CodecContext.create(codec, "r")
    assert isinstance(ctx, av.VideoCodecContext)
    ctx.thread_type = "AUTO" if whole_clip else "SLICE"
    if threads == 1:
        ctx.thread_count = 1
    return ctx


def packet(data: bytes, pts: int, dts: int | None = None) -> av.Packet:
    p = av.Packet(data)
    p.pts = pts
    p.dts = pts if dts is None else dts
    p.time_base = TIME_BASE
    return p
