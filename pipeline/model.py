"""Plain value types shared by manifest resolution and the media work.

Times are float seconds on the *archive timeline*: 0 is the start of the recording
(DASH: ``availabilityStartTime``; HLS: the first segment's PROGRAM-DATE-TIME or, without
one, the first segment).  ``Resolution.epoch_ms_at_zero`` maps it to wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True, slots=True)
class ByteRange:
    offset: int
    length: int

    def header(self) -> str:
        """HTTP/S3 ``Range`` header value (inclusive end)."""
        return f"bytes={self.offset}-{self.offset + self.length - 1}"


@dataclass(frozen=True, slots=True)
class SegmentRef:
    """One media segment as the manifest describes it; only the needed ones are built."""

    url: str  # absolute location: filesystem path or s3://bucket/key
    start: float  # archive time (s) of the segment's earliest presentation
    duration: float  # s
    byte_range: ByteRange | None = None
    init_url: str | None = None  # fMP4 initialization segment; None for MPEG-TS
    init_range: ByteRange | None = None
    # archive_time = pts_seconds + media_offset.  None: the media timestamps are not tied to
    # the manifest (HLS/TS), so align the segment's earliest presentation time to ``start``.
    media_offset: float | None = None
    discontinuity: bool = False  # timestamps restart here (HLS discontinuity, new Period)
    # HLS: the first segment of this one's run (the playlist's first, or the first after a
    # discontinuity), when it is another segment.  Packagers disagree on whether a segment's
    # playlist time is its keyframe's or its earliest presentation's, but at the head of a
    # run they are one picture, so the media work learns the run's offset there.  None when
    # unknown (a long PDT-dated playlist is sought, not walked, so its head is not seen): a
    # hint, not part of which segment this is.
    run_head: SegmentRef | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class TrackInfo:
    kind: Literal["video", "audio"]
    codec: str  # RFC 6381 codecs string when the manifest says, e.g. "avc1.64001f"
    bandwidth: int | None = None
    width: int | None = None
    height: int | None = None
    frame_rate: float | None = None
    sample_rate: int | None = None
    channels: int | None = None


@dataclass(frozen=True, slots=True)
class Gap:
    start: float  # archive time (s)
    end: float
    reason: Literal["gap", "missing", "live_edge", "corrupt"]

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Resolution:
    """What a manifest says about one requested range."""

    manifest: str
    kind: Literal["dash", "hls"]
    clock: Literal["wall", "relative"]  # which anchor mapped the request onto the archive
    epoch_ms_at_zero: int | None  # wall-clock ms of archive time 0, when the archive has one
    start: float  # requested range on the archive timeline (s)
    end: float
    video: tuple[SegmentRef, ...]
    audio: tuple[SegmentRef, ...]  # empty when audio is muxed into the video segments (TS)
    video_track: TrackInfo
    audio_track: TrackInfo | None
    audio_muxed: bool = False  # audio travels inside the video segments
    gaps: tuple[Gap, ...] = ()  # holes inside [start, end) the archive does not cover
    is_live: bool = False  # the manifest may still grow
    live_edge: float | None = None  # archive time where available media ends
    archive_start: float = 0.0  # earliest archive time the manifest still holds
    notes: tuple[str, ...] = field(default=())
    # The video segment just before video[0] when it continues into it (same Period, no
    # discontinuity, no hole): an open-GOP leading picture at the start references it.
    # None at the archive start or across a boundary.  Fetched only when needed.
    preroll: SegmentRef | None = None
    # The video segment just after video[-1] when video[-1] runs straight into it (same
    # Period, no discontinuity, no hole).  Where a packager gives a segment its keyframe's
    # time, the open-GOP leading pictures presented just before that keyframe are stored in
    # this segment, so a range ending there needs it.  None at the live edge, the end of
    # the archive or across a boundary.  Fetched only when the frames read fall short.
    postroll: SegmentRef | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def missing_after_edge(self) -> float:
        """Seconds of the range that lie beyond the live edge (still to be recorded)."""
        if self.live_edge is None:
            return 0.0
        return max(0.0, self.end - max(self.live_edge, self.start))

    @property
    def missing(self) -> float:
        """Seconds of the range the archive cannot deliver now: gaps plus beyond the edge."""
        return sum(g.duration for g in self.gaps) + self.missing_after_edge
