"""export_clip: the range [res.start, res.end) as one MP4 (+faststart) or MPEG-TS file.

Segments stream through one at a time (two GOPs at most are held for the smart cut), so
memory does not grow with the clip.  Missing and corrupt segments become holes on the
output timeline, reported with the manifest's gaps and the part beyond the live edge.
When the first wanted frame is an open-GOP leading picture, the segment before the range
(``Resolution.preroll``) is read too, from its last keyframe, so that frame decodes exactly
(without one, the leading pictures are reported missing and the clip starts at the keyframe).
Symmetrically, when the last segment's frames stop short of the end (the pictures just
before the next keyframe are stored with it, in ``Resolution.postroll``), that segment is
read too and only its frames inside the range are written; without it they are reported.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import av

from pipeline.errors import ExportError, InvalidRequest, MediaError
from pipeline.media.audio import AudioTrack
from pipeline.media.describe import OutputFacts, describe
from pipeline.media.options import EncodeOptions
from pipeline.media.results import ClipResult
from pipeline.media.smartcut import SmartCutter
from pipeline.media.source import (
    SegmentFetcher,
    SegmentMedia,
    SegmentUnusable,
    TimedPacket,
    TrackDemuxer,
    leading_wanted,
)
from pipeline.media.timeline import EPS, HOLE_EPS, Reason, Timeline
from pipeline.media.transcode import Transcoder
from pipeline.media.writer import ClipWriter, container_kind
from pipeline.model import Resolution, SegmentRef
from pipeline.storage import BlobReader

DEFAULT_OPTIONS = EncodeOptions()


def export_clip(
    reader: BlobReader,
    res: Resolution,
    out_path: Path,
    *,
    export_type: int,
    options: EncodeOptions = DEFAULT_OPTIONS,
    progress: Callable[[float], None] | None = None,
) -> ClipResult:
    if export_type not in (0, 1, 2):
        raise InvalidRequest(
            f"export_type must be 0, 1 or 2, not {export_type!r}", field="export_type"
        )
    if not res.video:
        raise MediaError("no video segments cover the range", obj=res.manifest)
    out_path = Path(out_path)
    kind = container_kind(out_path)
    part = out_path.with_name(out_path.name + ".part")
    timeline = Timeline(res.start, res.end, res.gaps)
    if res.live_edge is not None and res.live_edge < res.end:
        timeline.add_hole(max(res.live_edge, res.start), res.end, "live_edge")
    try:
        counts, facts = _run(reader, res, part, kind, export_type, options, timeline, progress)
        os.replace(part, out_path)
    except av.FFmpegError as e:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        raise MediaError(f"media processing failed: {e}", obj=res.manifest) from e
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        raise
    if progress is not None:
        progress(1.0)
    assert timeline.first is not None
    return clip_result(out_path, facts, res, timeline, timeline.first, counts=counts)


def clip_result(
    out_path: Path,
    facts: OutputFacts,
    res: Resolution,
    timeline: Timeline,
    first_frame_time: float,
    *,
    counts: tuple[int, int],
) -> ClipResult:
    """A written clip's result: its facts, and what of the requested range it delivered.
    ``counts``: frames copied and re-encoded."""
    requested_ms = round((res.end - res.start) * 1000)
    missing_ms = min(requested_ms, round(timeline.missing_seconds() * 1000))
    return ClipResult(
        path=out_path,
        container=facts.container,
        duration=facts.duration,
        video_codec=facts.video_codec,
        audio_codec=facts.audio_codec,
        width=facts.width,
        height=facts.height,
        frame_count=facts.frame_count,
        size=facts.size,
        sha256=facts.sha256,
        first_frame_time=first_frame_time,
        delivered_ms=requested_ms - missing_ms,
        missing_ms=missing_ms,
        gaps=timeline.gaps(),
        copied_frames=counts[0],
        reencoded_frames=counts[1],
    )


class VideoStrategy(Protocol):
    """How a clip's video is made: SmartCutter (export_type 0) or Transcoder (1 and 2)."""

    @property
    def done(self) -> bool:
        """Nothing more is wanted: the segments left need not be read."""
        ...

    @property
    def covered(self) -> float | None:
        """Archive time where the written video ends (the audio is written up to it)."""
        ...

    def feed(self, seg: SegmentMedia) -> bool:
        """Take one segment's video; False if its data stopped decoding part-way."""
        ...

    def hole(self) -> None:
        """The next segment does not continue the last one."""
        ...

    def finish(self) -> None: ...

    def counts(self) -> tuple[int, int]:
        """(copied, re-encoded) video frames."""
        ...


def _run(
    reader: BlobReader,
    res: Resolution,
    part: Path,
    kind: str,
    export_type: int,
    options: EncodeOptions,
    timeline: Timeline,
    progress: Callable[[float], None] | None,
) -> tuple[tuple[int, int], OutputFacts]:
    """Write the clip into ``part``; returns the (copied, re-encoded) video frame counts
    and the file's facts, from what was written."""
    run = _ClipRun(reader, res, part, kind, export_type, options, timeline)
    try:
        total = len(res.video)
        for i, ref in enumerate(res.video):
            if run.strategy is not None and run.strategy.done:
                break
            run.segment(i, ref)
            _report(progress, i + 1, total)
        run.postroll()
        counts = run.finish()
    finally:
        if run.writer is not None:
            run.writer.close()
    assert run.writer is not None  # finish() raised if nothing was written
    return counts, describe(part, run.writer)


class _ClipRun:
    """The state of one export: the demuxers, the output and the video strategy."""

    def __init__(
        self,
        reader: BlobReader,
        res: Resolution,
        part: Path,
        kind: str,
        export_type: int,
        options: EncodeOptions,
        timeline: Timeline,
    ) -> None:
        self.res, self.part, self.kind = res, part, kind
        self.export_type, self.options, self.timeline = export_type, options, timeline
        fetcher = SegmentFetcher(reader)
        self.video = TrackDemuxer(fetcher, want_video=True, want_audio=res.audio_muxed)
        self.audio = AudioTrack(fetcher, res, timeline, options)
        self.writer: ClipWriter | None = None
        self.strategy: VideoStrategy | None = None
        self.failures: list[SegmentUnusable] = []
        # archive time where the frames of the last segment read end (None: unusable)
        self.reach: float | None = None

    def segment(self, i: int, ref: SegmentRef) -> None:
        timeline = self.timeline
        try:
            seg = self.video.load(ref)
        except SegmentUnusable as e:
            self.failures.append(e)
            self.reach = None
            timeline.add_hole(ref.start, ref.start + ref.duration, _reason(e))
            if self.strategy is not None:
                self.strategy.hole()
            return
        self.reach = _frames_end(seg)
        if seg.damaged_from is not None:
            timeline.add_hole(seg.damaged_from, ref.start + ref.duration, "corrupt")
        if i == 0 and leading_wanted(seg.video, self.res.start):
            seg.video = _with_preroll(self.video, self.res.preroll, seg, timeline)
        strategy = self.strategy or self._start(seg)
        if i > 0 and _after_gap(self.res.video[i - 1], ref):
            strategy.hole()  # a manifest gap: this segment does not continue the one before
        seg.raw = b""
        self.audio.push(seg)
        if not strategy.feed(seg):
            # Undecodable data inside the segment: the rest of it becomes a hole.
            covered = strategy.covered if strategy.covered is not None else ref.start
            timeline.add_hole(max(ref.start, covered), ref.start + ref.duration, "corrupt")
            strategy.hole()
        elif seg.damaged_from is not None:
            strategy.hole()  # the next segment resumes after the lost part
        if strategy.covered is not None:
            self.audio.write_until(min(strategy.covered, timeline.end))

    def postroll(self) -> None:
        """Read ``Resolution.postroll`` when the last segment's frames stop short of the end.

        Only then, and only by less than a segment (the leading pictures of the next
        keyframe): a range ending inside its last segment is whole without it.  The frames
        it adds are those the placement rule wants (before the end, after the last written).
        When it is absent or unreadable, the frames still missing are a reported hole.
        """
        strategy, tl, reach = self.strategy, self.timeline, self.reach
        if strategy is None or strategy.done or reach is None or reach >= tl.end - HOLE_EPS:
            return
        if tl.in_hole(reach) or tl.end - reach >= self.res.video[-1].duration:
            return  # already reported (live edge, gap, damaged segment), or not a leading gap
        reason: Reason = "live_edge" if self.res.is_live else "missing"
        if self.res.postroll is not None:
            try:
                reach = self._feed_postroll(strategy, self.res.postroll, reach)
            except SegmentUnusable as e:
                reason = _reason(e)
        if reach < tl.end - HOLE_EPS:
            tl.add_hole(reach, tl.end, reason)

    def _feed_postroll(self, strategy: VideoStrategy, ref: SegmentRef, reach: float) -> float:
        """Feed the postroll; returns where the frames now end without a hole from ``reach``."""
        seg = self.video.load_out_of_turn(ref)  # the same run: the clock's offset holds
        seg.raw = b""
        self.audio.push(seg)
        fed = strategy.feed(seg)
        if strategy.covered is not None:
            self.audio.write_until(min(strategy.covered, self.timeline.end))
        if fed and min(p.pts for p in seg.video) <= reach + HOLE_EPS:
            return max(reach, _frames_end(seg))
        return reach

    def _start(self, seg: SegmentMedia) -> VideoStrategy:
        """The output and the strategy, made from the first usable segment."""
        self.writer = ClipWriter(self.part, "mpegts" if self.kind == "mpegts" else "mp4")
        self.strategy = _strategy(
            self.writer, self.timeline, seg, self.export_type, self.options, self._video_written
        )
        self.audio.prime(seg)
        self.audio.attach(self.writer)
        return self.strategy

    def _video_written(self, covered: float) -> None:
        """The video is in the file up to archive time ``covered``: the smart cut's arrives
        in bursts (behind an edge on a worker thread), and the audio goes in with it."""
        self.audio.write_until(min(covered, self.timeline.end))

    def finish(self) -> tuple[int, int]:
        strategy, timeline = self.strategy, self.timeline
        if strategy is None:
            raise _no_media(self.res, self.failures)
        strategy.finish()
        if timeline.first is None:
            raise _no_media(self.res, self.failures)
        self.audio.finish(min(strategy.covered or timeline.end, timeline.end))
        return strategy.counts()


def _reason(e: SegmentUnusable) -> Reason:
    return "missing" if e.reason == "missing" else "corrupt"


def _frames_end(seg: SegmentMedia) -> float:
    """Archive time where the segment's last presented frame ends."""
    assert seg.video_info is not None
    return max(p.pts for p in seg.video) + float(1 / seg.video_info.fps)


def _with_preroll(
    video: TrackDemuxer, preroll: SegmentRef | None, seg: SegmentMedia, timeline: Timeline
) -> list[TimedPacket]:
    """The first segment's packets behind the preroll's, from its last keyframe on.

    Only read when a wanted frame is an open-GOP leading picture of the first segment:
    it references the segment before.  Without that segment (none in the same run, or
    unreadable) the leading pictures cannot be rebuilt; they become a reported hole and
    the clip starts at the keyframe.
    """
    packets: list[TimedPacket] = []
    reason: Reason = "missing"
    if preroll is not None:
        try:
            packets = video.load_out_of_turn(preroll).video
        except SegmentUnusable as e:
            reason = _reason(e)
    keys = [k for k, p in enumerate(packets) if p.key]
    if keys:
        return packets[keys[-1] :] + seg.video
    key = next(p for p in seg.video if p.key)
    timeline.add_hole(timeline.start, key.pts, reason)
    return seg.video


def _strategy(
    writer: ClipWriter,
    timeline: Timeline,
    seg: SegmentMedia,
    export_type: int,
    options: EncodeOptions,
    written: Callable[[float], None],
) -> VideoStrategy:
    info = seg.video_info
    assert info is not None
    if export_type == 0:
        return SmartCutter(writer, timeline, info, seg.raw, options, written)
    return Transcoder(writer, timeline, info, "h264" if export_type == 1 else "hevc", options)


def _after_gap(before: SegmentRef, ref: SegmentRef) -> bool:
    return ref.start - (before.start + before.duration) > HOLE_EPS


def _no_media(res: Resolution, failures: list[SegmentUnusable]) -> ExportError:
    if failures:
        f = failures[0]
        return MediaError(
            f"no decodable frame in the range; {f.reason} segment: {f.detail}", obj=f.ref.url
        )
    return MediaError(
        f"no frame between {res.start:.3f}s and {res.end - EPS:.3f}s in the segments",
        obj=res.video[0].url,
    )


def _report(progress: Callable[[float], None] | None, done: int, total: int) -> None:
    if progress is not None:
        # 1.0 is reported once the file is written and described.
        progress(min(done / total, 0.99))
