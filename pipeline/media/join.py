"""join_chunks: video chunks encoded apart, concatenated losslessly into one clip.

A long type 1/2 clip is transcoded as chunks that start on keyframes of the source (each
chunk is ``export_clip`` of a sub-range, video only).  Every chunk starts with an IDR and
was encoded with the same settings, so the chunks' parameter sets are the same bytes: the
joined stream keeps one ``avcC``/``hvcC`` (checked here; different ones fail the job rather
than make a file one decoder cannot play) and its packets are the chunks' packets, shifted
to where each chunk begins on the whole clip's output timeline.  Nothing is decoded or
re-encoded.  The audio is made once for the whole range by the same
:class:`~pipeline.media.audio.AudioTrack` the unsplit path uses, on the same timeline (the
holes every chunk reported), so it is what the unsplit clip would have.

Decode timestamps are made again: a chunk's MP4 keeps its frames' order and presentation
times, but not the encoder's decode delay (the muxer normalises it per file, differently
for a chunk whose first frames have no B-frames).  The joined stream's dts of the k-th
packet is the k-th presentation time minus one delay for the whole clip, the largest any
chunk needs (:func:`reorder_ticks`, measured by the chunk stage), so dts rise across the
junctions and never pass a pts.

Packets are read one chunk at a time and audio written up to the video written so far, so
memory does not grow with the clip.
"""

from __future__ import annotations

import contextlib
import heapq
import os
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from pipeline.errors import MediaError
from pipeline.media.audio import AudioTrack
from pipeline.media.clip import clip_result
from pipeline.media.describe import describe
from pipeline.media.encode import TICKS, TIME_BASE
from pipeline.media.options import EncodeOptions
from pipeline.media.results import ClipResult
from pipeline.media.source import SegmentFetcher, SegmentMedia
from pipeline.media.timeline import EPS, Timeline
from pipeline.media.writer import ClipWriter, Span
from pipeline.model import Gap, Resolution
from pipeline.storage import BlobReader

AUDIO_STEP_S = 1.0  # write the audio up to the video every this many seconds of video
# Packets read ahead before one gets its dts: more than any encoder's reordering (x264 and
# x265 reorder at most 16 B-frames).
REORDER_WINDOW = 32


@dataclass(frozen=True)
class ChunkClip:
    """One encoded chunk: its file (video only) and what its export said about it."""

    path: Path
    first_frame_time: float  # archive time of its first frame
    gaps: tuple[Gap, ...]  # the holes inside its range (archive time)
    reencoded_frames: int
    reorder_ticks: int  # its decode delay (reorder_ticks of its file)


def reorder_ticks(path: Path) -> int:
    """The decode delay a video file needs (1/90000 s): how far a packet's presentation
    time lies before the presentation time of its place in decode order, at most."""
    times = [pts for _, pts, _ in _packets(path)]
    return max((t - pts for t, pts in zip(sorted(times), times, strict=True)), default=0)


def join_chunks(
    reader: BlobReader,
    res: Resolution,
    chunks: Sequence[ChunkClip],
    out_path: Path,
    *,
    options: EncodeOptions,
) -> ClipResult:
    """The clip of ``res`` from its chunks (in order), with its audio; an MP4 file."""
    if not chunks:
        raise MediaError("no chunks to join", obj=res.manifest)
    timeline = whole_timeline(res, chunks)
    part = out_path.with_name(out_path.name + ".part")
    try:
        writer = _write(reader, res, chunks, part, timeline, options)
        facts = describe(part, writer)
        os.replace(part, out_path)
    except av.FFmpegError as e:
        raise MediaError(f"joining the chunks failed: {e}", obj=str(chunks[0].path)) from e
    finally:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
    reencoded = sum(c.reencoded_frames for c in chunks)
    first = chunks[0].first_frame_time
    return clip_result(out_path, facts, res, timeline, first, counts=(0, reencoded))


def whole_timeline(res: Resolution, chunks: Sequence[ChunkClip]) -> Timeline:
    """The unsplit clip's timeline: the manifest's gaps, the live edge, every chunk's holes."""
    timeline = Timeline(res.start, res.end, res.gaps)
    if res.live_edge is not None and res.live_edge < res.end:
        timeline.add_hole(max(res.live_edge, res.start), res.end, "live_edge")
    for chunk in chunks:
        for gap in chunk.gaps:
            timeline.add_hole(gap.start, gap.end, gap.reason)
    timeline.first = chunks[0].first_frame_time
    return timeline


def archive_time(timeline: Timeline, out: float) -> float:
    """The archive time shown at output time ``out`` (``Timeline.out_time`` inverted)."""
    assert timeline.first is not None
    t = timeline.first + out
    for hole in timeline.gaps():
        if hole.start >= timeline.first - EPS and hole.start <= t + EPS:
            t += hole.duration
    return t


def _write(
    reader: BlobReader,
    res: Resolution,
    chunks: Sequence[ChunkClip],
    part: Path,
    timeline: Timeline,
    options: EncodeOptions,
) -> ClipWriter:
    """Write the joined clip into ``part``; returns the (closed) writer, which knows what
    it was given (describe.py takes the output's facts from it)."""
    writer = ClipWriter(part, "mp4")
    try:
        _add_video(writer, chunks)
        audio = AudioTrack(SegmentFetcher(reader), res, timeline, options)
        audio.prime(SegmentMedia(ref=res.video[0]))  # separate audio: only its own segments
        audio.attach(writer)
        delay = max(c.reorder_ticks for c in chunks)
        video_end = 0  # ticks: where the video written so far ends
        next_audio = 0.0
        for chunk in chunks:
            offset = round(timeline.out_time(chunk.first_frame_time) * TICKS)
            for packet, pts, dts, duration in _decode_order(chunk.path, offset - delay):
                if dts > pts + offset:
                    raise MediaError("a chunk reorders more than it said", obj=str(chunk.path))
                packet.pts, packet.dts, packet.duration = pts + offset, dts, duration
                packet.time_base = TIME_BASE
                writer.mux_encoded_video([packet])
                video_end = max(video_end, pts + offset + duration)
                if video_end / TICKS >= next_audio:
                    audio.write_until(min(archive_time(timeline, video_end / TICKS), res.end))
                    next_audio = video_end / TICKS + AUDIO_STEP_S
        covered = archive_time(timeline, video_end / TICKS)
        audio.finish(min(covered, timeline.end))
    finally:
        writer.close()
    return writer


def _add_video(writer: ClipWriter, chunks: Sequence[ChunkClip]) -> None:
    """The output's video stream, a copy of the first chunk's; every chunk must match it."""
    with av.open(str(chunks[0].path)) as first:
        template = first.streams.video[0]
        extradata = bytes(template.codec_context.extradata or b"")
        stream = writer.out.add_stream_from_template(template)
        codec = template.codec_context
        writer.video_span, writer.size = Span(codec.name), (codec.width, codec.height)
    for chunk in chunks[1:]:
        with av.open(str(chunk.path)) as other:
            if bytes(other.streams.video[0].codec_context.extradata or b"") != extradata:
                raise MediaError(
                    "chunks were encoded with different parameter sets", obj=str(chunk.path)
                )
    stream.time_base = TIME_BASE
    writer.video = stream


def _decode_order(path: Path, shift: int) -> Iterator[tuple[av.Packet, int, int, int]]:
    """A chunk's packets in decode order with pts, the new dts (the k-th smallest pts plus
    ``shift``) and duration, in 1/90000 s."""
    ahead: deque[tuple[av.Packet, int, int]] = deque()
    times: list[int] = []
    for packet, pts, duration in _packets(path):
        ahead.append((packet, pts, duration))
        heapq.heappush(times, pts)
        if len(ahead) > REORDER_WINDOW:
            packet, pts, duration = ahead.popleft()
            yield packet, pts, heapq.heappop(times) + shift, duration
    while ahead:
        packet, pts, duration = ahead.popleft()
        yield packet, pts, heapq.heappop(times) + shift, duration


def _packets(path: Path) -> Iterator[tuple[av.Packet, int, int]]:
    """A chunk's video packets in decode order with pts and duration in 1/90000 s (edit
    lists ignored: the chunk's first frame is at its own time 0 either way)."""
    with av.open(str(path), options={"ignore_editlist": "1"}) as c:
        stream = c.streams.video[0]
        tb = stream.time_base or TIME_BASE
        for p in c.demux(stream):
            if p.pts is None:
                continue  # the demuxer's flush packet
            yield p, _ticks(p.pts, tb), _ticks(p.duration or 0, tb)


def _ticks(value: int, tb: Fraction) -> int:
    return round(value * tb * TICKS)
